// Chat through the room plugin over WebSocket (plugins/room/README.md):
// 100 join, 102 say, 104 stats; pushes 110 (joined/left) and 111 (chat).
// Serve clients/js over HTTP (after `npm run build`) and open
// demo/index.html?ws=ws://HOST:WSPORT/ ; the default is this page's host, port 11010.
import { connect } from '../dist/index.js';

const JOIN = 100, SAY = 102, STATS = 104, PUSH_EVENT = 110, PUSH_SAY = 111;
const params = new URLSearchParams(location.search);
const url = params.get('ws') ?? `ws://${location.hostname || '127.0.0.1'}:11010/`;
const $ = (sel) => document.querySelector(sel);
const text = (bytes) => new TextDecoder().decode(bytes);

function log(kind, line) {
  const div = document.createElement('div');
  div.className = kind;
  div.textContent = `${kind.padEnd(5)} ${line}`; // textContent: nothing from the server is HTML
  $('#log').append(div);
  $('#log').scrollTop = $('#log').scrollHeight;
}

let client = null;
let joined = null; // {name, room}: joined again on every new session

async function showStats() {
  const stats = text(await client.request(STATS));
  const generation = /generation=(\d+)/.exec(stats)?.[1] ?? '?';
  const version = /version=(\S+)/.exec(stats)?.[1] ?? '?';
  $('#status').textContent = `connected to ${url} · room plugin ${version}, generation ${generation}`;
  log('reply', stats);
}

async function join() {
  log('reply', text(await client.request(JOIN, joined.room)));
  for (const el of document.querySelectorAll('#say input, #say button')) el.disabled = false;
  await showStats();
}

async function guarded(fn) {
  try {
    await fn();
  } catch (e) {
    log('error', e.message);
  }
}

async function start() {
  client = await connect(url);
  client.on(PUSH_EVENT, (body) => log('push', text(body)));
  client.on(PUSH_SAY, (body) => log('push', text(body)));
  client.on('sessionlost', ({ reason }) => {
    $('#status').textContent = `connection lost (${reason}), reconnecting…`;
    log('event', `session lost: ${reason}`);
  });
  client.on('reconnect', () => {
    log('event', 'reconnected: a new session');
    if (joined) guarded(join);
  });
  $('#status').textContent = `connected to ${url}`;
}

$('#join').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  joined = { name: String(form.get('name')), room: String(form.get('room')) };
  guarded(join);
});
$('#say').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = ev.target.elements.text;
  const line = `${joined.name}> ${input.value}`;
  input.value = '';
  guarded(async () => log('reply', text(await client.request(SAY, line))));
});
$('#stats').addEventListener('click', () => guarded(showStats));

// ?name=..&room=..&say=.. joins (and says) at once: used by the headless browser check.
start().then(async () => {
  if (!params.get('name')) return;
  joined = { name: params.get('name'), room: params.get('room') ?? 'hall' };
  $('#join [name=name]').value = joined.name;
  $('#join [name=room]').value = joined.room;
  await guarded(join);
  if (params.get('say')) {
    $('#say [name=text]').value = params.get('say');
    $('#say').requestSubmit();
  }
}, (e) => {
  $('#status').textContent = `cannot connect to ${url}: ${e.message}`;
});
