// URL helpers of the two entry points (not exported from the package).
import { ConnectError } from './errors.js';

export function parseUrl(target: string): URL {
  try {
    return new URL(target);
  } catch {
    throw new ConnectError(`not a URL: ${target}`);
  }
}

export function isWebSocketUrl(url: URL): boolean {
  return url.protocol === 'ws:' || url.protocol === 'wss:';
}
