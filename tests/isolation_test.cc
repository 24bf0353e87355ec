// Isolation as seen from inside a sandbox.
#include <sys/stat.h>

#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

TEST_F(SandboxTest, InitIsPid1AndHostProcessesAreInvisible) {
  SandboxInfo sb = Create();
  EXPECT_EQ(Sh(sb.id, "cat /proc/1/comm"), "paddock-init\n");
  // Only init and the shell (reading /proc itself): nothing of the host.
  std::string names =
      Sh(sb.id, "for p in /proc/[0-9]*; do read c < $p/comm && echo $c; done | sort -u");
  // The pipeline's sort may or may not have exec'd yet when the loop reads it.
  EXPECT_TRUE(names == "paddock-init\nsh\n" || names == "paddock-init\nsh\nsort\n") << names;
  std::string host_pid = std::to_string(::getpid());
  auto r = Exec(sb.id, {"/bin/sh", "-c", "test -e /proc/" + host_pid + "/comm && cat /proc/" +
                                             host_pid + "/comm"});
  EXPECT_NE(r.stdout_data, "sandbox_tests\n");
}

TEST_F(SandboxTest, HostnameIsTheSandboxName) {
  SandboxSpec spec;
  spec.name = "box-7";
  SandboxInfo sb = Create(spec);
  EXPECT_EQ(Sh(sb.id, "cat /proc/sys/kernel/hostname; cat /etc/hostname"), "box-7\nbox-7\n");
}

TEST_F(SandboxTest, RootInsideIsAnUnprivilegedHostId) {
  SandboxInfo sb = Create();
  EXPECT_EQ(Sh(sb.id, "id -u"), "0\n");
  EXPECT_EQ(Sh(sb.id, "cat /proc/self/uid_map | tr -s ' '"),
            " 0 " + std::to_string(sb.ids.host_first) + " 65536\n");
  // A file root creates inside is owned on the host by the sandbox's range.
  Sh(sb.id, "echo x > /root/made-inside");
  struct stat st;
  ASSERT_EQ(::stat((sb.dir + "/upper/root/made-inside").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, sb.ids.host_first);
  EXPECT_GE(st.st_uid, 65536u);
  // Template files are root's inside, and root may change them (copy-up).
  EXPECT_EQ(Sh(sb.id, "stat -c %u /etc/passwd; echo 'x:x:5:5::/:/bin/sh' >> /etc/passwd && echo ok"),
            "0\nok\n");
}

TEST_F(SandboxTest, PrivilegedOperationsFail) {
  SandboxInfo sb = Create();
  // mount (seccomp + no CAP_SYS_ADMIN), module load, writes to /sys and /proc/sys.
  auto r = Exec(sb.id, {"/bin/sh", "-c",
                        "mount -t tmpfs none /mnt 2>/dev/null && echo mount-ok;"
                        "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo procsys-ok;"
                        "echo x > /sys/kernel/uevent_helper 2>/dev/null && echo sys-ok;"
                        "touch /sys/x 2>/dev/null && echo sys-touch-ok;"
                        "modprobe dummy 2>/dev/null && echo modprobe-ok;"
                        "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None, use_errno=True);"
                        " r=l.syscall(175, 0, 0, 0); print(\"init_module\", r, ctypes.get_errno())';"
                        "echo done"});
  EXPECT_EQ(r.stdout_data, "init_module -1 1\ndone\n") << r.stderr_data;
}

TEST_F(SandboxTest, SeccompDeniesDangerousSyscalls) {
  SandboxInfo sb = Create();
  // Each must fail with EPERM (1): bpf(321), perf_event_open(298), keyctl(250),
  // userfaultfd(323), kexec_load(246), unshare(272) of a user or mount ns,
  // clone(56) of a net ns, io_uring_setup(425), kcmp(312), pidfd_getfd(438),
  // personality(135) without ASLR; sockets: AF_VSOCK(40), AF_PACKET(17), raw
  // IPv4 and IPv6. A syscall number past the list's newest: ENOSYS (38).
  std::string script =
      "import ctypes\n"
      "l = ctypes.CDLL(None, use_errno=True)\n"
      "for name, nr, a, b, c in [('bpf',321,0,0,0),('perf_event_open',298,0,0,0),"
      "('keyctl',250,0,0,0),('userfaultfd',323,0,0,0),('kexec_load',246,0,0,0),"
      "('unshare_user',272,0x10000000,0,0),('unshare_mnt',272,0x20000,0,0),"
      "('clone_net',56,0x40000000|17,0,0),('io_uring_setup',425,8,0,0),('kcmp',312,1,1,0),"
      "('pidfd_getfd',438,0,0,0),('personality',135,0x0040000,0,0),('vsock',41,40,1,0),"
      "('packet',41,17,3,0),('raw4',41,2,3,1),('raw6',41,10,3,58),('future',1000,0,0,0)]:\n"
      "    ctypes.set_errno(0)\n"
      "    r = l.syscall(nr, a, b, c, 0, 0)\n"
      "    print(name, r, ctypes.get_errno())\n";
  auto r = Exec(sb.id, {"python3", "-c", script});
  EXPECT_EQ(r.stdout_data,
            "bpf -1 1\nperf_event_open -1 1\nkeyctl -1 1\nuserfaultfd -1 1\nkexec_load -1 1\n"
            "unshare_user -1 1\nunshare_mnt -1 1\nclone_net -1 1\nio_uring_setup -1 1\n"
            "kcmp -1 1\npidfd_getfd -1 1\npersonality -1 1\nvsock -1 1\npacket -1 1\n"
            "raw4 -1 1\nraw6 -1 1\nfuture -1 38\n")
      << r.stderr_data;
}

// What programs do every day still works under the allow list: threads,
// processes, pipes, TCP and UDP, unix sockets, netlink, timers, mmap, xattrs.
TEST_F(SandboxTest, SeccompAllowsEverydayPrograms) {
  SandboxInfo sb = Create();
  std::string script =
      "import os, socket, subprocess, threading, tempfile, mmap, time, signal, json, hashlib\n"
      "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
      "print(subprocess.run(['sh', '-c', 'echo sub | cat'], capture_output=True, text=True).stdout, end='')\n"
      "a, b = socket.socketpair(); a.send(b'x'); assert b.recv(1) == b'x'\n"
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c = socket.create_connection(s.getsockname());"
      " conn, _ = s.accept(); c.send(b'tcp'); print(conn.recv(3).decode())\n"
      "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0));"
      " u.sendto(b'udp', u.getsockname()); print(u.recv(3).decode())\n"
      "n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); n.close()\n"
      "f = tempfile.TemporaryFile(); f.write(b'm' * 4096); f.flush(); mm = mmap.mmap(f.fileno(), 4096); print(mm[:1].decode())\n"
      "signal.setitimer(signal.ITIMER_REAL, 0.01); signal.signal(signal.SIGALRM, lambda *a: None); time.sleep(0.05)\n"
      "print(hashlib.sha256(b'').hexdigest()[:8], os.cpu_count() > 0)\n";
  auto r = Exec(sb.id, {"python3", "-c", script});
  EXPECT_EQ(r.stdout_data, "sub\ntcp\nudp\nm\ne3b0c442 True\n") << r.stderr_data;
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
}

TEST_F(SandboxTest, CapabilitiesAreBoundedAndNoNewPrivsIsSet) {
  SandboxInfo sb = Create();
  std::string status =
      Sh(sb.id, "grep -E '^(CapInh|CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status");
  EXPECT_NE(status.find("CapInh:\t0000000000000000"), std::string::npos) << status;
  EXPECT_NE(status.find("CapBnd:\t00000000a80425fb"), std::string::npos) << status;
  EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos) << status;
  EXPECT_NE(status.find("Seccomp:\t2"), std::string::npos) << status;
  std::string root = Sh(sb.id, "grep ' / / ' /proc/self/mountinfo");
  EXPECT_NE(root.find("nosuid"), std::string::npos) << root;
  EXPECT_NE(root.find("nodev"), std::string::npos) << root;
}

TEST_F(SandboxTest, SensitivePathsAreMaskedAndNoHostSecrets) {
  SandboxInfo sb = Create();
  // Each masked file that this kernel has reads as empty.
  EXPECT_EQ(Sh(sb.id, "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug "
                      "/proc/kallsyms; do test -e $f && test -s $f && echo $f; done; true"),
            "");
  EXPECT_NE(Sh(sb.id, "wc -c < /proc/self/status"), "0\n");  // the rest of /proc works
  EXPECT_EQ(Sh(sb.id, "ls /etc/shadow /etc/ssh /etc/ssl/private /root/.ssh 2>/dev/null | wc -l"),
            "0\n");
  EXPECT_EQ(Sh(sb.id, "ls /sys/firmware | wc -l"), "0\n");
}

TEST_F(SandboxTest, DevHasTheMinimalNodesAndPtys) {
  SandboxInfo sb = Create();
  EXPECT_EQ(Sh(sb.id, "ls /dev | tr '\\n' ' '"),
            "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero ");
  EXPECT_EQ(Sh(sb.id, "head -c 16 /dev/urandom | wc -c; echo x > /dev/null && echo ok"), "16\nok\n");
}

TEST_F(SandboxTest, TmpIsWritableAndUsrIsReadOnly) {
  SandboxInfo sb = Create();
  EXPECT_EQ(Sh(sb.id, "echo a > /tmp/a && cat /tmp/a; touch /usr/x 2>/dev/null || echo ro"),
            "a\nro\n");
}

TEST_F(SandboxTest, NetworkIsLoopbackOnly) {
  SandboxInfo sb = Create();
  EXPECT_EQ(Sh(sb.id, "ls /sys/class/net | tr '\\n' ' '"), "lo ");
  EXPECT_EQ(Sh(sb.id, "python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1',80));"
                      " s.listen(); c=socket.create_connection(('127.0.0.1',80)); print('ok')\""),
            "ok\n");
}

TEST_F(SandboxTest, SandboxesCannotSeeEachOther) {
  SandboxInfo a = Create();
  SandboxInfo b = Create();
  Sh(a.id, "echo secret > /tmp/mine");
  EXPECT_EQ(Sh(b.id, "cat /tmp/mine 2>/dev/null || echo absent"), "absent\n");
  EXPECT_NE(a.ids.host_first, b.ids.host_first);
}

}  // namespace
}  // namespace paddock::testing
