// Small helpers for the tests.
import type { Client, ClientEvents } from '../src/node.js';

export const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Resolves with the arguments of the next `event`; rejects after timeoutMs (a hang fails, it does not block). */
export function next<K extends keyof ClientEvents>(
  client: Client,
  event: K,
  timeoutMs = 10000,
): Promise<Parameters<ClientEvents[K]>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(event, ((...args: Parameters<ClientEvents[K]>) => {
      clearTimeout(timer);
      off();
      resolve(args);
    }) as ClientEvents[K]);
  });
}

/** Resolves with the body of the next push with `command` whose text passes `match`. */
export function nextPush(client: Client, command: number, match: (s: string) => boolean = () => true, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no push ${command} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(command, (body) => {
      if (!match(text(body))) return;
      clearTimeout(timer);
      off();
      resolve(text(body));
    });
  });
}
