// Starts a paddockd of its own for the E2B SDK: a fresh state folder, a
// unix socket, TCP on a free loopback port with an API key; and points the
// SDK at it through E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY. stop()
// checks that the host is left clean.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const paddockd = process.env.PADDOCKD ?? path.join(root, 'build/bin/paddockd');

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export async function waitFor(check, what, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Sandbox cgroups (any hierarchy), paddock-init processes and pdk* network
// devices on this host.
export function hostResources() {
  const cgroups = [];
  for (const base of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
    let dirs = [];
    try { dirs = fs.readdirSync(base); } catch { continue; }
    for (const d of [base, ...dirs.map((x) => path.join(base, x))]) {
      try {
        for (const e of fs.readdirSync(path.join(d, 'paddock'), { withFileTypes: true }))
          if (e.isDirectory()) cgroups.push(path.join(d, 'paddock', e.name));
      } catch { /* no paddock parent here */ }
    }
  }
  const inits = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'paddock-init'; } catch { return false; }
  });
  let links = [];
  try { links = fs.readdirSync('/sys/class/net').filter((l) => l.startsWith('pdk')); } catch { /* no sysfs */ }
  return { cgroups, inits, links };
}

export async function startDaemon({ extraArgs = [] } = {}) {
  const before = hostResources();
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'pdk-e2b-'));
  fs.chmodSync(state, 0o711);  // sandboxes run as unprivileged ids and must reach their folders
  const port = await freePort();
  const apiKey = 'e2b_paddock_test_key';
  const log = fs.openSync(path.join(state, 'paddockd.log'), 'a');
  const child = spawn(paddockd, [
    '--state-dir', path.join(state, 'state'), '--socket', path.join(state, 'paddock.sock'),
    '--listen', `127.0.0.1:${port}`, '--api-key', apiKey, '--reap-interval-ms', '100',
    '--e2b-domain', 'paddock.test', ...extraArgs,
  ], { stdio: ['ignore', log, log] });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    try { return (await fetch(`${url}/v1/health`, { headers: { 'X-API-Key': apiKey } })).ok; } catch { return false; }
  }, 'paddockd to answer');
  process.env.E2B_API_URL = url;
  process.env.E2B_SANDBOX_URL = url;
  process.env.E2B_VOLUME_API_URL = url;
  process.env.E2B_API_KEY = apiKey;
  return {
    url, apiKey, state,
    log: () => fs.readFileSync(path.join(state, 'paddockd.log'), 'utf8'),
    async stop() {
      // Everything the tests made is deleted through the API first.
      const list = await (await fetch(`${url}/v1/sandboxes`, { headers: { 'X-API-Key': apiKey } })).json();
      for (const s of list.sandboxes)
        await fetch(`${url}/v1/sandboxes/${s.id}`, { method: 'DELETE', headers: { 'X-API-Key': apiKey } });
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      const after = hostResources();
      fs.rmSync(state, { recursive: true, force: true });
      const leaked = {
        cgroups: after.cgroups.filter((c) => !before.cgroups.includes(c)),
        inits: after.inits.filter((p) => !before.inits.includes(p)),
        links: after.links.filter((l) => !before.links.includes(l)),
      };
      return leaked;
    },
  };
}
