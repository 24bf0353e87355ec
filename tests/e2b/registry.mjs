// A real registry (Debian's docker-registry) on 127.0.0.1 for the SDK
// tests, and images for it built with umoci from this host's busybox and
// pushed with skopeo. stop() kills it and removes its files.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './daemon.mjs';

export async function startRegistry() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pdk-e2b-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  fs.writeFileSync(path.join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/storage\n` +
    `http:\n  addr: ${host}\n`);
  const log = fs.openSync(path.join(dir, 'registry.log'), 'a');
  const child = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', log, log] });
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), 'docker-registry to listen');
  return {
    host,
    // Builds an image of busybox with `config` (umoci config flags, e.g.
    // ['--config.env', 'A=b']) and pushes it as host/repoTag; returns the ref.
    push(repoTag, config = []) {
      const layout = path.join(dir, 'layout');
      const bundle = path.join(dir, 'bundle');
      fs.rmSync(layout, { recursive: true, force: true });
      fs.rmSync(bundle, { recursive: true, force: true });
      execFileSync('umoci', ['init', '--layout', layout]);
      execFileSync('umoci', ['new', '--image', `${layout}:v1`]);
      execFileSync('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
      const bin = path.join(bundle, 'rootfs', 'bin');
      fs.mkdirSync(bin, { recursive: true });
      fs.copyFileSync('/bin/busybox', path.join(bin, 'busybox'));
      fs.chmodSync(path.join(bin, 'busybox'), 0o755);
      for (const applet of ['sh', 'id', 'pwd', 'cat', 'echo']) fs.symlinkSync('busybox', path.join(bin, applet));
      // The SDK runs commands with `/bin/bash -l -c`; busybox has no bash applet.
      fs.writeFileSync(path.join(bin, 'bash'), '#!/bin/sh\nexec /bin/sh "$@"\n', { mode: 0o755 });
      execFileSync('umoci', ['repack', '--image', `${layout}:v1`, bundle]);
      if (config.length) execFileSync('umoci', ['config', '--image', `${layout}:v1`, ...config]);
      execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${host}/${repoTag}`]);
      return `${host}/${repoTag}`;
    },
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
