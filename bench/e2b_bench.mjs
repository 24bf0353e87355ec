// e2b_bench: the official E2B SDK against paddockd on loopback. Over N
// sandboxes (default 100): Sandbox.create, commands.run('true'),
// files.write + read of 1 KiB, and kill; and, in the same run, the same
// operations through Paddock's own /v1 REST API as the peer. Prints p50/p99
// in milliseconds and the ratios; asserts nothing.
//
//   node bench/e2b_bench.mjs [--count N]      (after scripts/test.sh's npm ci)
import { Sandbox } from '../tests/e2b/node_modules/e2b/dist/index.mjs';
import { startDaemon } from '../tests/e2b/daemon.mjs';

const count = Number(process.argv[process.argv.indexOf('--count') + 1]) || 100;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const table = new Map();
function add(name, ms) {
  if (!table.has(name)) table.set(name, []);
  table.get(name).push(ms);
}
function pct(name, q) {
  const v = [...table.get(name)].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.round(q * (v.length - 1)))];
}

const daemon = await startDaemon();
const v1 = (method, path, body) => fetch(`${daemon.url}/v1${path}`, {
  method, headers: { 'X-API-Key': daemon.apiKey, 'Content-Type': 'application/json' },
  body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
});
const kib = 'x'.repeat(1024);
try {
  // Warm-up outside the measurements: templates built, connections open.
  await (await Sandbox.create('base')).kill();
  for (let i = 0; i < count; i++) {
    let t = now();
    const sbx = await Sandbox.create('base');
    add('sdk: Sandbox.create', now() - t);
    t = now();
    await sbx.commands.run('true');
    add("sdk: commands.run('true')", now() - t);
    t = now();
    await sbx.files.write('/tmp/f.txt', kib);
    if ((await sbx.files.read('/tmp/f.txt')).length !== 1024) throw new Error('short read');
    add('sdk: files.write+read 1 KiB', now() - t);
    t = now();
    await sbx.kill();
    add('sdk: kill', now() - t);

    t = now();
    const created = await (await v1('POST', '/sandboxes', { template: 'host' })).json();
    add('v1: create', now() - t);
    t = now();
    const ran = await (await v1('POST', `/sandboxes/${created.id}/exec`, { cmd: ['true'] })).json();
    if (ran.exit_code !== 0) throw new Error(JSON.stringify(ran));
    add('v1: exec true', now() - t);
    t = now();
    await v1('PUT', `/sandboxes/${created.id}/files?path=/tmp/f.txt`, kib);
    if ((await (await v1('GET', `/sandboxes/${created.id}/files?path=/tmp/f.txt`)).text()).length !== 1024)
      throw new Error('short read');
    add('v1: file write+read 1 KiB', now() - t);
    t = now();
    await v1('DELETE', `/sandboxes/${created.id}`);
    add('v1: delete', now() - t);
  }
} finally {
  await daemon.stop();
}

console.log(`e2b_bench: ${count} sandboxes, template base (host), loopback TCP, e2b SDK 2.51.0\n`);
console.log('operation'.padEnd(34) + 'p50 ms'.padStart(10) + 'p99 ms'.padStart(10));
for (const name of table.keys())
  console.log(name.padEnd(34) + pct(name, 0.5).toFixed(2).padStart(10) + pct(name, 0.99).toFixed(2).padStart(10));
console.log('\nSDK p50 / v1 p50 (the SDK\'s own overhead, same daemon, same run)');
for (const [sdk, rest] of [['sdk: Sandbox.create', 'v1: create'], ["sdk: commands.run('true')", 'v1: exec true'],
  ['sdk: files.write+read 1 KiB', 'v1: file write+read 1 KiB'], ['sdk: kill', 'v1: delete']])
  console.log(`${sdk} / ${rest}`.padEnd(60) + (pct(sdk, 0.5) / pct(rest, 0.5)).toFixed(2) + 'x');
