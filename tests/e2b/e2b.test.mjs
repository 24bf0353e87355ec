// The official E2B SDK (npm `e2b`, pinned in package.json), unmodified,
// against a paddockd of this test's own. Each case is what an E2B user writes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  CommandExitError, Sandbox, SandboxError, SandboxNotFoundError, NotFoundError, ServiceBusyError, Template, Volume,
  waitForPort,
} from 'e2b';
import { startDaemon } from './daemon.mjs';
import { startRegistry } from './registry.mjs';

let daemon;
before(async () => { daemon = await startDaemon(); });
after(async () => {
  const leaked = await daemon.stop();
  assert.deepEqual(leaked, { cgroups: [], inits: [], links: [] }, 'the host is left clean');
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(check, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test('create with metadata and env vars; run a command; read stdout, stderr and exit code', async () => {
  const sbx = await Sandbox.create('base', { metadata: { owner: 'alice', run: '1' }, envs: { GREETING: 'hello' } });
  try {
    const info = await sbx.getInfo();
    assert.equal(info.sandboxId, sbx.sandboxId);
    assert.deepEqual(info.metadata, { owner: 'alice', run: '1' });
    assert.equal(info.state, 'running');
    const r = await sbx.commands.run('echo $GREETING; echo oops >&2; exit 0');
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'hello\n');
    assert.equal(r.stderr, 'oops\n');
    const env = await sbx.commands.run('echo $A-$GREETING', { envs: { A: 'b' }, cwd: '/tmp' });
    assert.equal(env.stdout, 'b-hello\n');
    await assert.rejects(sbx.commands.run('echo out; echo bad >&2; exit 3'), (err) => {
      assert.ok(err instanceof CommandExitError, String(err));
      assert.equal(err.exitCode, 3);
      assert.equal(err.stdout, 'out\n');
      assert.equal(err.stderr, 'bad\n');
      return true;
    });
  } finally {
    await sbx.kill();
  }
});

test('a background command: reconnect, send stdin, kill', async () => {
  const sbx = await Sandbox.create('base');
  try {
    const bg = await sbx.commands.run('while read line; do echo "got $line"; done', { background: true, stdin: true });
    assert.ok(bg.pid > 0);
    await bg.disconnect();
    const listed = await sbx.commands.list();
    assert.ok(listed.some((p) => p.pid === bg.pid), JSON.stringify(listed));
    let seen = '';
    const again = await sbx.commands.connect(bg.pid, { onStdout: (d) => { seen += d; } });
    await sbx.commands.sendStdin(bg.pid, 'one\n');
    await eventually(() => seen.includes('got one'), 'the echoed stdin');
    assert.equal(await sbx.commands.kill(bg.pid), true);
    await assert.rejects(again.wait(), CommandExitError);
    assert.equal(await sbx.commands.kill(987654), false, 'killing an unknown pid says false');
  } finally {
    await sbx.kill();
  }
});

test('a pty: write to it, resize it', async () => {
  const sbx = await Sandbox.create('base');
  try {
    let out = '';
    const dec = new TextDecoder();
    const term = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d); } });
    const enc = new TextEncoder();
    await sbx.pty.sendInput(term.pid, enc.encode('stty size\n'));
    await eventually(() => out.includes('24 80'), 'stty size 24 80');
    await sbx.pty.resize(term.pid, { cols: 100, rows: 30 });
    await sbx.pty.sendInput(term.pid, enc.encode('stty size; exit\n'));
    await eventually(() => out.includes('30 100'), 'stty size 30 100');
    const end = await term.wait();
    assert.equal(end.exitCode, 0);
  } finally {
    await sbx.kill();
  }
});

test('files and directories: write, read, list, stat, rename, remove', async () => {
  const sbx = await Sandbox.create('base');
  try {
    await sbx.files.write('/work/a.txt', 'alpha');
    assert.equal(await sbx.files.read('/work/a.txt'), 'alpha');
    assert.equal(await sbx.files.makeDir('/work/sub/deeper'), true);
    assert.equal(await sbx.files.makeDir('/work/sub/deeper'), false, 'an existing directory');
    await sbx.files.write('/work/sub/deeper/b.txt', 'beta');
    const top = await sbx.files.list('/work');
    assert.deepEqual(top.map((e) => e.name).sort(), ['a.txt', 'sub']);
    const deep = await sbx.files.list('/work', { depth: 3 });
    assert.ok(deep.some((e) => e.path === '/work/sub/deeper/b.txt'), JSON.stringify(deep));
    const info = await sbx.files.getInfo('/work/a.txt');
    assert.equal(info.type, 'file');
    assert.equal(info.size, 5);
    assert.equal(info.name, 'a.txt');
    assert.equal((await sbx.files.getInfo('/work/sub')).type, 'dir');
    await sbx.files.rename('/work/a.txt', '/work/c.txt');
    assert.equal(await sbx.files.exists('/work/a.txt'), false);
    assert.equal(await sbx.files.read('/work/c.txt'), 'alpha');
    await sbx.files.remove('/work/sub');
    assert.equal(await sbx.files.exists('/work/sub'), false);
    await assert.rejects(sbx.files.read('/work/missing'), NotFoundError);
    // Relative paths are the user's home (root's here), as on E2B.
    await sbx.files.write('rel.txt', 'home');
    assert.equal((await sbx.commands.run('cat /root/rel.txt')).stdout, 'home');
  } finally {
    await sbx.kill();
  }
});

test('upload and download a 10 MiB file intact', async () => {
  const sbx = await Sandbox.create('base');
  try {
    const data = new Uint8Array(10 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    await sbx.files.write('/tmp/big.bin', data);
    const back = await sbx.files.read('/tmp/big.bin', { format: 'bytes' });
    assert.equal(back.length, data.length);
    assert.ok(Buffer.from(back).equals(Buffer.from(data)), 'the bytes round-trip');
    const sum = await sbx.commands.run('wc -c < /tmp/big.bin');
    assert.equal(sum.stdout.trim(), String(10 << 20));
  } finally {
    await sbx.kill();
  }
});

test('watch a directory and receive events', async () => {
  const sbx = await Sandbox.create('base');
  try {
    await sbx.files.makeDir('/watched');
    const events = [];
    const handle = await sbx.files.watchDir('/watched', (e) => events.push(e));
    await sbx.files.write('/watched/new.txt', 'x');
    await sbx.commands.run('mv /watched/new.txt /watched/moved.txt; rm /watched/moved.txt');
    await eventually(() => events.some((e) => e.type === 'remove'), 'a remove event');
    assert.ok(events.some((e) => e.name === 'new.txt' && (e.type === 'create' || e.type === 'write')), JSON.stringify(events));
    assert.ok(events.some((e) => e.type === 'rename'), JSON.stringify(events));
    await handle.stop();
  } finally {
    await sbx.kill();
  }
});

test('a timeout ends the sandbox on time (kill)', async () => {
  const sbx = await Sandbox.create('base', { timeoutMs: 60_000 });
  await sbx.setTimeout(1000);
  const t0 = Date.now();
  await eventually(async () => !(await sbx.isRunning()), 'the sandbox to end', 15000);
  assert.ok(Date.now() - t0 >= 900, 'not before its timeout');
  await assert.rejects(Sandbox.getInfo(sbx.sandboxId), SandboxNotFoundError);
});

test('autoPause: the timeout pauses, connect resumes with files and processes kept', async () => {
  const sbx = await Sandbox.create('base', { timeoutMs: 1000, lifecycle: { onTimeout: 'pause' } });
  try {
    await sbx.files.write('/kept.txt', 'kept');
    const bg = await sbx.commands.run('sleep 600', { background: true });
    await eventually(async () => (await Sandbox.getInfo(sbx.sandboxId)).state === 'paused', 'the pause', 15000);
    const back = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 });
    assert.equal((await back.getInfo()).state, 'running');
    assert.equal(await back.files.read('/kept.txt'), 'kept');
    assert.ok((await back.commands.list()).some((p) => p.pid === bg.pid), 'the process survived the pause');
    // An explicit pause, and connect again.
    assert.equal(await back.pause(), true);
    assert.equal((await Sandbox.getInfo(sbx.sandboxId)).state, 'paused');
    const again = await Sandbox.connect(sbx.sandboxId);
    assert.equal((await again.commands.run('cat /kept.txt')).stdout, 'kept');
  } finally {
    await Sandbox.kill(sbx.sandboxId);
  }
});

test('list with a metadata filter; kill; the not-found errors', async () => {
  const a = await Sandbox.create('base', { metadata: { suite: 'list', who: 'a' } });
  const b = await Sandbox.create('base', { metadata: { suite: 'list', who: 'b' } });
  try {
    const page = await Sandbox.list({ query: { metadata: { suite: 'list', who: 'b' } } }).nextItems();
    assert.deepEqual(page.map((s) => s.sandboxId), [b.sandboxId]);
    const both = await Sandbox.list({ query: { metadata: { suite: 'list' } } }).nextItems();
    assert.deepEqual(both.map((s) => s.sandboxId).sort(), [a.sandboxId, b.sandboxId].sort());
    const paginator = Sandbox.list({ query: { metadata: { suite: 'list' } }, limit: 1 });
    const first = await paginator.nextItems();
    assert.equal(first.length, 1);
    assert.equal(paginator.hasNext, true);
    const second = await paginator.nextItems();
    assert.equal(second.length, 1);
    assert.notEqual(first[0].sandboxId, second[0].sandboxId);
  } finally {
    await a.kill();
  }
  assert.equal(await b.kill(), true);
  assert.equal(await Sandbox.kill(b.sandboxId), false, 'killing it again finds nothing');
  await assert.rejects(Sandbox.getInfo(b.sandboxId), SandboxNotFoundError);
  await assert.rejects(Sandbox.connect(b.sandboxId), SandboxNotFoundError);
  await assert.rejects(b.commands.run('true'));
});

test('a template whose registry does not answer gets a retry-later error naming it', async () => {
  // Any template but the built-ins is an image reference; nothing listens on
  // 127.0.0.1:9 (tests reach no real registry): 503, which the SDK calls busy.
  await assert.rejects(Sandbox.create('127.0.0.1:9/no-such-template'), (err) => {
    assert.ok(err instanceof ServiceBusyError, String(err));
    assert.match(err.message, /no-such-template/);
    assert.match(err.message, /127\.0\.0\.1:9/);
    return true;
  });
  await assert.rejects(Sandbox.create('Not A Template'), (err) => {
    assert.ok(err instanceof SandboxError, String(err));
    assert.match(err.message, /Not A Template/);
    return true;
  });
});

test('a template named by an OCI image reference is pulled, and its env and workdir apply', async () => {
  const registry = await startRegistry();
  try {
    const ref = registry.push('e2b/app:v1', ['--config.env', 'GREETING=from-image', '--config.workingdir', '/srv']);
    const sbx = await Sandbox.create(ref);
    try {
      const info = await sbx.getInfo();
      assert.equal(info.templateId, ref);
      const r = await sbx.commands.run('echo $GREETING; pwd; id -u');
      assert.equal(r.stdout, 'from-image\n/srv\n0\n');
      await sbx.files.write('/srv/note.txt', 'hi');
      assert.equal(await sbx.files.read('/srv/note.txt'), 'hi');
    } finally {
      await sbx.kill();
    }
  } finally {
    await registry.stop();
  }
});

test('fork copies the filesystem; keeping memory is refused with a reason', async () => {
  const sbx = await Sandbox.create('base', { metadata: { origin: 'fork-test' } });
  try {
    await sbx.files.write('/data/state.txt', 'v1');
    await sbx.commands.run('rm /etc/debian_version; mkdir -p /data/empty');  // a whiteout over the template
    const forks = await sbx.fork({ count: 2 });
    assert.equal(forks.length, 2);
    for (const f of forks) {
      assert.ok(f instanceof Sandbox, String(f));
      assert.notEqual(f.sandboxId, sbx.sandboxId);
      assert.equal(await f.files.read('/data/state.txt'), 'v1');
      assert.equal(await f.files.exists('/data/empty'), true);
      assert.equal(await f.files.exists('/etc/debian_version'), false, 'the whiteout was copied');
      // Root inside owns the copied files, in the fork's own id range.
      assert.equal((await f.commands.run('stat -c %u:%g /data/state.txt')).stdout, '0:0\n');
      assert.deepEqual((await f.getInfo()).metadata, { origin: 'fork-test' });
    }
    // The copies are independent of each other and of the source.
    await forks[0].files.write('/data/state.txt', 'v2');
    assert.equal(await forks[1].files.read('/data/state.txt'), 'v1');
    assert.equal(await sbx.files.read('/data/state.txt'), 'v1');
    assert.equal((await sbx.commands.run('echo still running')).stdout, 'still running\n');
    for (const f of forks) await f.kill();

    const res = await fetch(`${daemon.url}/sandboxes/${sbx.sandboxId}/fork`, {
      method: 'POST', headers: { 'X-API-KEY': daemon.apiKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ memory: true }),
    });
    assert.equal(res.status, 501);
    assert.match((await res.json()).message, /filesystem only.*memory/);
  } finally {
    await sbx.kill();
  }
});

test('snapshots: create, list, start sandboxes from them, delete; memory is not kept', async () => {
  const sbx = await Sandbox.create('base');
  const made = [];
  try {
    await sbx.files.write('/data/state.txt', 'v1');
    const snap = await sbx.createSnapshot({ name: 'sdk-snap' });
    assert.match(snap.snapshotId, /^snap-/);
    assert.deepEqual(snap.names, ['sdk-snap']);
    const unnamed = await Sandbox.createSnapshot(sbx.sandboxId);
    assert.deepEqual(unnamed.names, []);
    // The source goes on running, its files its own.
    await sbx.files.write('/data/state.txt', 'v2');

    const listed = await sbx.listSnapshots().nextItems();
    assert.deepEqual(listed.map((s) => s.snapshotId).sort(), [snap.snapshotId, unnamed.snapshotId].sort());
    const byName = await Sandbox.listSnapshots({ name: 'sdk-snap' }).nextItems();
    assert.deepEqual(byName.map((s) => s.snapshotId), [snap.snapshotId]);
    const paged = Sandbox.listSnapshots({ limit: 1 });
    assert.equal((await paged.nextItems()).length, 1);
    assert.equal(paged.hasNext, true);
    assert.equal((await paged.nextItems()).length, 1);

    // By name and by id, as a template.
    for (const template of ['sdk-snap', snap.snapshotId]) {
      const from = await Sandbox.create(template);
      made.push(from);
      assert.equal(await from.files.read('/data/state.txt'), 'v1');
    }
    await assert.rejects(Sandbox.deleteSnapshot(snap.snapshotId), /in use/);

    const res = await fetch(`${daemon.url}/v1/sandboxes/${sbx.sandboxId}/snapshots`, {
      method: 'POST', headers: { 'X-API-KEY': daemon.apiKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ memory: true }),
    });
    assert.equal(res.status, 501);
    assert.match((await res.json()).error.message, /memory/);
  } finally {
    for (const s of made) await s.kill();
    await sbx.kill();
  }
  // Snapshots outlive their source; gone once deleted.
  const all = await Sandbox.listSnapshots().nextItems();
  assert.equal(all.length, 2);
  for (const s of all) assert.equal(await Sandbox.deleteSnapshot(s.snapshotId), true);
  assert.equal(await Sandbox.deleteSnapshot('snap-0000000000000000'), false);
  assert.deepEqual(await Sandbox.listSnapshots().nextItems(), []);
});

test('Template: build from steps with a start command, rebuild from the cache, start sandboxes by its name', async () => {
  const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'pdk-e2b-template-'));
  try {
    fs.mkdirSync(path.join(ctx, 'site'));
    fs.writeFileSync(path.join(ctx, 'site', 'index.html'), '<p>from the sdk</p>\n');
    fs.writeFileSync(path.join(ctx, 'tool.sh'), 'echo tool\n');
    const make = () => Template({ fileContextPath: ctx })
      .fromTemplate('base')
      .runCmd(['mkdir -p /srv', 'echo built > /srv/built.txt'])
      .copy('site', '/srv/site')
      .copy('tool.sh', '/opt/bin/', { mode: 0o755 })
      .setEnvs({ GREETING: 'hi' })
      .setWorkdir('/srv')
      .setUser('user')
      .setStartCmd('busybox httpd -f -p 8080 -h /srv/site', waitForPort(8080));
    const logs = [];
    const built = await Template.build(make(), 'sdk-web:v1', { onBuildLogs: (e) => logs.push(e.message) });
    assert.equal(built.templateId, 'sdk-web');
    assert.ok(logs.some((m) => m.includes('RUN mkdir -p /srv && echo built')), logs.join('\n'));
    assert.ok(logs.some((m) => m.startsWith('START busybox httpd')), logs.join('\n'));
    assert.equal(await Template.exists('sdk-web'), true);
    assert.equal(await Template.exists('sdk-none'), false);

    // Built once: the files are not sent again, every step comes from the cache.
    const again = [];
    await Template.build(make(), 'sdk-web', { onBuildLogs: (e) => again.push(e.message) });
    assert.ok(again.some((m) => m.includes("Skipping upload of 'site'")), again.join('\n'));
    assert.equal(again.filter((m) => m.startsWith('CACHED')).length, 3, again.join('\n'));

    // Created once its server listens; with the template's env, workdir and user.
    for (const name of ['sdk-web', 'sdk-web:v1']) {
      const sbx = await Sandbox.create(name);
      try {
        const r = await sbx.commands.run('busybox wget -qO- http://127.0.0.1:8080/index.html; whoami; ' +
                                         'echo $GREETING; cat built.txt; /opt/bin/tool.sh');
        assert.equal(r.stdout, '<p>from the sdk</p>\nuser\nhi\nbuilt\ntool\n');
      } finally {
        await sbx.kill();
      }
    }

    // Tags: more names for the same build.
    const assigned = await Template.assignTags('sdk-web:v1', ['prod', 'stable']);
    assert.deepEqual(assigned.tags, ['prod', 'stable']);
    const tags = (await Template.getTags('sdk-web')).map((t) => t.tag).sort();
    assert.deepEqual(tags, ['prod', 'stable', 'v1']);
    const prod = await Sandbox.create('sdk-web:prod');
    await prod.kill();
    await Template.removeTags('sdk-web', 'stable');
    assert.deepEqual((await Template.getTags('sdk-web')).map((t) => t.tag).sort(), ['prod', 'v1']);

    // A failing step fails the build with its output; nothing is named.
    await assert.rejects(
      Template.build(Template().fromTemplate('base').runCmd('echo nope; exit 7'), 'sdk-bad'),
      (err) => { assert.match(err.message, /exited with code 7/); assert.match(err.message, /nope/); return true; });
    assert.equal(await Template.exists('sdk-bad'), false);

    const del = await fetch(`${daemon.url}/templates/sdk-web`, { method: 'DELETE', headers: { 'X-API-KEY': daemon.apiKey } });
    assert.equal(del.status, 204);
    assert.equal(await Template.exists('sdk-web'), false);
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
});

test('volumes: create, mount in two sandboxes, list, refuse to destroy while mounted, destroy', async () => {
  const vol = await Volume.create('sdk-vol');
  assert.equal(vol.name, 'sdk-vol');
  const a = await Sandbox.create('base', { volumeMounts: { '/data': vol } });
  const b = await Sandbox.create('base', { volumeMounts: { '/mnt/shared': 'sdk-vol' } });
  try {
    await a.commands.run('echo from-a > /data/note.txt');
    assert.equal((await b.commands.run('cat /mnt/shared/note.txt')).stdout, 'from-a\n');
    const info = await a.getInfo();
    assert.deepEqual(info.volumeMounts, [{ name: 'sdk-vol', path: '/data' }]);
    assert.deepEqual((await Volume.list()).map((v) => v.name), ['sdk-vol']);
    await assert.rejects(Volume.destroy(vol.volumeId), /in use/);
    await assert.rejects(Sandbox.create('base', { volumeMounts: { '/x': 'no-such-volume' } }), /volume 'no-such-volume'/);
  } finally {
    await a.kill();
    await b.kill();
  }
  await eventually(async () => (await Volume.destroy(vol.volumeId).catch(() => false)) === true, 'the volume to go');
  assert.equal(await Volume.destroy(vol.volumeId), false);
  assert.deepEqual(await Volume.list(), []);
});

test("a volume's files without a sandbox: write, read, list, mkdir, metadata, remove; its token is checked", async () => {
  const vol = await Volume.create('sdk-files');
  assert.ok(vol.token.length >= 32, 'a token of its own');
  try {
    const written = await vol.writeFile('/hello.txt', 'hi from the sdk\n', { uid: 1000, gid: 1000, mode: 0o640 });
    assert.equal(written.type, 'file');
    assert.equal(written.size, 16);
    assert.equal(written.uid, 1000);
    assert.equal(written.mode, 0o640);
    assert.ok(written.mtime instanceof Date && !Number.isNaN(written.mtime.getTime()));
    assert.equal(await vol.readFile('/hello.txt'), 'hi from the sdk\n');
    const bytes = new Uint8Array(3 << 20).map((_, i) => i % 251);
    await vol.writeFile('/bin.dat', bytes);
    assert.deepEqual(await vol.readFile('/bin.dat', { format: 'bytes' }), bytes);
    const dir = await vol.makeDir('/a/b', { force: true });
    assert.equal(dir.type, 'directory');
    assert.equal(dir.path, '/a/b');
    assert.deepEqual((await vol.list('/')).map((e) => e.name), ['a', 'bin.dat', 'hello.txt']);
    assert.deepEqual((await vol.list('/', { depth: 2 })).map((e) => e.path), ['/a', '/a/b', '/bin.dat', '/hello.txt']);
    assert.equal(await vol.exists('/a/b'), true);
    assert.equal(await vol.exists('/nope'), false);
    assert.equal((await vol.updateMetadata('/hello.txt', { mode: 0o600 })).mode, 0o600);
    await assert.rejects(vol.readFile('/nope'), (e) => e.name === 'VolumePathNotFoundError');

    // A sandbox mounting it sees the files the API wrote, and the API what it writes.
    const sbx = await Sandbox.create('base', { volumeMounts: { '/data': vol } });
    try {
      assert.equal((await sbx.commands.run("stat -c '%u %a' /data/hello.txt; cat /data/hello.txt")).stdout,
        '1000 600\nhi from the sdk\n');
      await sbx.commands.run('echo from-the-sandbox > /data/a/b/note');
      assert.equal(await vol.readFile('/a/b/note'), 'from-the-sandbox\n');
    } finally {
      await sbx.kill();
    }
    await vol.remove('/a');
    assert.equal(await vol.exists('/a'), false);

    // Connected by id, it gets the token; a wrong one is refused.
    const again = await Volume.connect(vol.volumeId);
    assert.equal(await again.readFile('/hello.txt'), 'hi from the sdk\n');
    const forged = new Volume(vol.volumeId, vol.name, 'not-the-token');
    await assert.rejects(forged.readFile('/hello.txt'), /401|API key|Unauthorized/i);
    // The token opens its volume's content routes and nothing else, even by a path that climbs.
    const url = new URL(process.env.E2B_API_URL);
    const climb = await getVia(url.href, url.host, `/volumecontent/${vol.volumeId}/../../v2/sandboxes`,
      { Authorization: `Bearer ${vol.token}` });
    assert.equal(climb.status, 401);
  } finally {
    await eventually(async () => (await Volume.destroy(vol.volumeId).catch(() => false)) === true, 'the volume to go');
  }
});

test('malformed Connect envelopes and JSON get Connect error bodies; a wrong token is refused', async () => {
  const sbx = await Sandbox.create('base');
  try {
    const headers = { 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken };
    const call = (method, type, body, h = headers) =>
      fetch(`${daemon.url}/${method}`, { method: 'POST', headers: { ...h, 'Content-Type': type }, body });
    let res = await call('filesystem.Filesystem/Stat', 'application/json', '{not json');
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'invalid_argument');
    res = await call('filesystem.Filesystem/Stat', 'application/json', JSON.stringify({ path: '/nope' }));
    assert.equal(res.status, 404);
    assert.equal((await res.json()).code, 'not_found');
    // A stream whose envelope announces more bytes than it sends.
    res = await call('process.Process/Start', 'application/connect+json', Buffer.from([0, 0, 0, 0, 99, 123]));
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(body[0], 2, 'an end-of-stream envelope');
    const end = JSON.parse(body.subarray(5).toString());
    assert.equal(end.error.code, 'invalid_argument');
    assert.match(end.error.message, /truncated/);
    res = await call('process.Process/Nope', 'application/json', '{}');
    assert.equal((await res.json()).code, 'unimplemented');
    // A field of the wrong type, unary and streamed: the caller's error, 400.
    res = await call('filesystem.Filesystem/ListDir', 'application/json', JSON.stringify({ path: '/', depth: 'deep' }));
    assert.equal(res.status, 400);
    let error = await res.json();
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, /wrong type/);
    const start = Buffer.from(JSON.stringify({ process: { cmd: 'true', cwd: 5 } }));
    const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, start.length]), start]);
    res = await call('process.Process/Start', 'application/connect+json', envelope);
    const streamed = Buffer.from(await res.arrayBuffer());
    error = JSON.parse(streamed.subarray(5).toString()).error;
    assert.equal(error.code, 'invalid_argument');
    assert.match(error.message, /wrong type/);
    res = await call('filesystem.Filesystem/Stat', 'application/json', JSON.stringify({ path: '/' }),
      { ...headers, 'X-Access-Token': 'wrong' });
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, 'unauthenticated');
    // The sandbox carries on.
    assert.equal((await sbx.commands.run('echo alive')).stdout, 'alive\n');
  } finally {
    await sbx.kill();
  }
});

test('a sandbox holds at most 64 watchers; removing one makes room', async () => {
  const sbx = await Sandbox.create('base');
  try {
    const headers = {
      'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken, 'Content-Type': 'application/json',
    };
    const call = (method, body) =>
      fetch(`${daemon.url}/filesystem.Filesystem/${method}`, { method: 'POST', headers, body: JSON.stringify(body) });
    const ids = [];
    for (let i = 0; i < 64; i++) {
      const res = await call('CreateWatcher', { path: '/tmp' });
      assert.equal(res.status, 200, await res.clone().text());
      ids.push((await res.json()).watcherId);
    }
    let res = await call('CreateWatcher', { path: '/tmp' });
    const refused = await res.json();
    assert.equal(refused.code, 'resource_exhausted');
    assert.match(refused.message, /64 watchers/);
    // A streamed watch counts too.
    await assert.rejects(sbx.files.watchDir('/tmp', () => {}), /64 watchers/);
    res = await call('RemoveWatcher', { watcherId: ids.pop() });
    assert.equal(res.status, 200);
    res = await call('CreateWatcher', { path: '/tmp' });
    assert.equal(res.status, 200);
    assert.equal((await sbx.commands.run('echo alive')).stdout, 'alive\n');
  } finally {
    await sbx.kill();
  }
});

test('StreamInput (a Connect client stream) delivers its data messages in order', async () => {
  const sbx = await Sandbox.create('base');
  try {
    let out = '';
    const cat = await sbx.commands.run('cat', { background: true, stdin: true, onStdout: (d) => { out += d; } });
    const envelope = (obj) => {
      const json = Buffer.from(JSON.stringify(obj));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(json.length, 1);
      return Buffer.concat([head, json]);
    };
    const data = (text) => envelope({ data: { input: { stdin: Buffer.from(text).toString('base64') } } });
    const res = await fetch(`${daemon.url}/process.Process/StreamInput`, {
      method: 'POST',
      headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken,
        'Content-Type': 'application/connect+json' },
      body: Buffer.concat([envelope({ start: { process: { pid: cat.pid } } }), data('one\n'), data('two\n')]),
    });
    assert.equal(res.status, 200);
    const reply = Buffer.from(await res.arrayBuffer());
    assert.equal(reply[0], 0, 'one reply message');
    const endAt = 5 + reply.readUInt32BE(1);
    assert.equal(reply[endAt], 2, 'then the end of the stream');
    assert.deepEqual(JSON.parse(reply.subarray(endAt + 5).toString()), {});
    await eventually(() => out === 'one\ntwo\n', 'both lines echoed in order');
    await cat.kill();
  } finally {
    await sbx.kill();
  }
});

// A GET to paddockd's port with the Host header a browser would send for getHost(port).
function getVia(url, host, path, headers = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, headers: { Host: host, ...headers } }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a server in the sandbox answers at getHost(port); private traffic wants the token', async () => {
  const sbx = await Sandbox.create('base', { network: { allowPublicTraffic: false } });
  try {
    assert.equal(sbx.getHost(8000), `8000-${sbx.sandboxId}.paddock.test`);
    assert.equal(sbx.trafficAccessToken.length, 32);
    await sbx.files.write('/srv/hello.txt', 'hello from the sandbox');
    await sbx.commands.run('python3 -m http.server 8000 --bind 0.0.0.0 --directory /srv', { background: true });
    const token = { 'e2b-traffic-access-token': sbx.trafficAccessToken };
    await eventually(async () => (await getVia(daemon.url, sbx.getHost(8000), '/hello.txt', token)).status === 200,
      'the server to answer through the proxy');
    const ok = await getVia(daemon.url, sbx.getHost(8000), '/hello.txt', token);
    assert.equal(ok.body, 'hello from the sandbox');
    assert.equal((await getVia(daemon.url, sbx.getHost(8000), '/hello.txt')).status, 401);
    const dead = await getVia(daemon.url, sbx.getHost(8001), '/', token);
    assert.equal(dead.status, 502);
    assert.match(dead.body, new RegExp(`port 8001 of sandbox ${sbx.sandboxId}`));
  } finally {
    await sbx.kill();
  }
});

test('allowInternetAccess and updateNetwork change egress; domains are refused by name', async () => {
  const sbx = await Sandbox.create('base', { allowInternetAccess: false });
  try {
    let info = await sbx.getInfo();
    assert.equal(info.allowInternetAccess, false);
    assert.deepEqual(info.network.denyOut, ['0.0.0.0/0']);
    await sbx.updateNetwork({ allowInternetAccess: true, denyOut: ['192.0.2.0/24'] });
    info = await sbx.getInfo();
    assert.equal(info.allowInternetAccess, true);
    assert.deepEqual(info.network.denyOut, ['192.0.2.0/24']);
    await assert.rejects(sbx.updateNetwork({ allowOut: ['example.com'], denyOut: ['0.0.0.0/0'] }),
      (err) => /example\.com/.test(String(err)));
    assert.deepEqual((await sbx.getInfo()).network.denyOut, ['192.0.2.0/24'], 'the refused update changed nothing');
  } finally {
    await sbx.kill();
  }
});
