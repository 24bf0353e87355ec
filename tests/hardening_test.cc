// Issue 12's doors, each tried as an attacker would, from inside a sandbox
// or from the host: each must fail fast, and the sandbox, the daemon and
// the other sandboxes carry on; the host is left clean.
#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/fd.h"
#include "base/fs.h"
#include "kernel/cgroup.h"
#include "daemon_fixture.h"

namespace paddock::testing {
namespace {

// Runs `try_open` for each path as an unprivileged local user (nobody) and
// returns the paths it could open.
std::vector<std::string> OpenableByNobody(const std::vector<std::string>& paths) {
  std::vector<std::string> opened;
  for (const auto& path : paths) {
    pid_t child = ::fork();
    if (child == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
          ::setresuid(65534, 65534, 65534) != 0)
        ::_exit(2);
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      ::_exit(fd >= 0 ? 0 : 1);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 2) << "could not become nobody";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) opened.push_back(path);
  }
  return opened;
}

// Another local account on the host reads neither the database (every
// sandbox's access token) nor a sandbox's files.
TEST_F(DaemonTest, OtherLocalUsersReadNeitherTheDatabaseNorSandboxFiles) {
  json sb = Must("POST", "/v1/sandboxes", {{"name", "secret"}}, 201);
  Must("POST", "/v1/sandboxes/secret/exec", {{"command", "echo token > /root.txt; chmod 644 /root.txt"}});
  std::string state = state_->path() + "/state", dir = state + "/sandboxes/" + sb["id"].get<std::string>();
  ASSERT_TRUE(PathExists(dir + "/upper/root.txt"));
  std::vector<std::string> targets = {state + "/paddock.db", state + "/paddock.db-wal",
                                      state + "/paddock.db-shm", dir + "/upper/root.txt", dir,
                                      state + "/sandboxes", state + "/images"};
  EXPECT_EQ(OpenableByNobody(targets), std::vector<std::string>{});
  for (const auto& db : {"/paddock.db", "/paddock.db-wal", "/paddock.db-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat((state + db).c_str(), &st), 0) << db;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << db;
  }
  // The sandbox itself is unaffected: its own users still read its root.
  json r = Must("POST", "/v1/sandboxes/secret/exec",
                {{"command", "cat /root.txt; ls / >/dev/null"}, {"user", "nobody"}, {"cwd", "/"}});
  EXPECT_EQ(r["exit_code"], 0) << r.dump();
  EXPECT_EQ(r["stdout"].get<std::string>().substr(0, 6), "token\n");
}

// The doors to paddock-init from inside: tracing it (which stopped it, and
// with it every exec, `rm` and paddockd's shutdown), its memory, its file
// descriptors. All refused; the sandbox answers and is deleted as usual.
TEST_F(DaemonTest, SandboxCodeCannotTraceInitReadItsMemoryOrTakeItsDescriptors) {
  Must("POST", "/v1/sandboxes", {{"name", "attacker"}}, 201);
  const char* attack = R"py(
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, call):
    ctypes.set_errno(0)
    r = call()
    print(name, "refused" if r == -1 else "GOT THROUGH", ctypes.get_errno() if r == -1 else r)
attempt("ptrace_attach", lambda: libc.ptrace(16, 1, 0, 0))
attempt("ptrace_seize", lambda: libc.ptrace(0x4206, 1, 0, 0))
def mem():
    try:
        os.open("/proc/1/mem", os.O_RDONLY)
        return 0
    except OSError as e:
        ctypes.set_errno(e.errno)
        return -1
attempt("proc_mem", mem)
pidfd = libc.syscall(434, 1, 0)
attempt("pidfd_getfd", lambda: -1 if pidfd < 0 else libc.syscall(438, pidfd, 3, 0))
buf = ctypes.create_string_buffer(16)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 16)
remote = iovec(0x400000, 16)
attempt("process_vm_readv", lambda: libc.process_vm_readv(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))
)py";
  json r = Must("POST", "/v1/sandboxes/attacker/exec", {{"cmd", {"python3", "-c", attack}}});
  std::string out = r.value("stdout", "");
  EXPECT_EQ(out.find("GOT THROUGH"), std::string::npos) << out << r.dump();
  for (const char* door : {"ptrace_attach", "ptrace_seize", "proc_mem", "pidfd_getfd", "process_vm_readv"})
    EXPECT_NE(out.find(std::string(door) + " refused"), std::string::npos) << door << ":\n" << out;
  EXPECT_EQ(Must("GET", "/v1/sandboxes/attacker")["state"], "running");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/attacker/exec", {{"command", "echo alive"}})["stdout"], "alive\n");
  // Its own programs can still be debugged: only init is out of reach.
  json traced = Must("POST", "/v1/sandboxes/attacker/exec",
                     {{"command", "sleep 30 & python3 -c \"import ctypes,sys; l=ctypes.CDLL(None); "
                                  "print(l.ptrace(16, int(sys.argv[1]), 0, 0))\" $!; kill $!"}});
  EXPECT_EQ(traced["stdout"], "0\n") << traced.dump();
  Must("DELETE", "/v1/sandboxes/attacker", nullptr, 204);
}

// A FIFO, a device or a socket through the files API is refused at once; it
// used to stall init (an open that waits for a writer), and every exec with it.
TEST_F(DaemonTest, FilesApiRefusesFifosDevicesAndSocketsWithoutStalling) {
  Must("POST", "/v1/sandboxes", {{"name", "pipes"}}, 201);
  Must("POST", "/v1/sandboxes/pipes/exec",
       {{"command", "mkfifo /tmp/fifo && mkdir -p /data && mkfifo /data/pipe && echo x > /data/file && "
                    "python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('/tmp/sock')\""}});
  auto refused = [&](const std::string& path, const std::string& kind) {
    std::string err = MustFail("GET", "/v1/sandboxes/pipes/files?path=" + path, "", 409);
    EXPECT_NE(err.find("is a " + kind), std::string::npos) << path << ": " << err;
  };
  refused("/tmp/fifo", "FIFO");
  refused("/dev/null", "device");
  refused("/tmp/sock", "socket");
  // A write replaces the FIFO (a new file renamed over it): no open of it.
  auto put = api().Send("PUT", "/v1/sandboxes/pipes/files?path=/tmp/fifo", "now a file",
                        "application/octet-stream");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->status, 200) << put->body;
  EXPECT_EQ(api().Send("GET", "/v1/sandboxes/pipes/files?path=/tmp/fifo")->body, "now a file");
  EXPECT_EQ(Must("POST", "/v1/sandboxes/pipes/exec", {{"command", "echo alive"}})["stdout"], "alive\n");
  // An archive of a folder holding a FIFO leaves it out and carries on.
  auto tar = api().Send("GET", "/v1/sandboxes/pipes/files/archive?path=/data");
  ASSERT_TRUE(tar.ok());
  EXPECT_EQ(tar->status, 200) << tar->body;
  EXPECT_NE(tar->body.find("file"), std::string::npos);
}

// The files a start writes into the sandbox (/etc/resolv.conf at every
// start) after its code had its way with them: a FIFO there made the start
// wait forever on its open, and with it the sandbox's rm and paddockd's
// SIGTERM. Each is now replaced by a new file, never written through (the
// open neither waits nor follows a link); a folder the sandbox put there is
// left to it.
TEST_F(DaemonTest, StartReplacesLaunchFilesTheSandboxTurnedIntoFifosOrLinks) {
  Must("POST", "/v1/sandboxes", {{"name", "traps"}}, 201);
  Must("POST", "/v1/sandboxes/traps/exec",
       {{"command", "rm /etc/resolv.conf /etc/hosts /etc/hostname && mkfifo /etc/resolv.conf && "
                    "ln -s /tmp/target /etc/hosts && mkdir /etc/hostname"},
        {"user", "root"}});
  Must("POST", "/v1/sandboxes/traps/stop", json::object());
  auto started = api().Send("POST", "/v1/sandboxes/traps/start", "{}");
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  EXPECT_EQ(started->status, 200) << started->body;
  std::string out = Must("POST", "/v1/sandboxes/traps/exec",
                         {{"command", "stat -c %F /etc/resolv.conf /etc/hosts /etc/hostname; "
                                      "grep -c nameserver /etc/resolv.conf; ls /tmp/target 2>&1"}})["stdout"];
  // resolv.conf is written at every start; hosts and hostname only at the
  // first (so the link stays, and nothing was written through it).
  EXPECT_EQ(out.substr(0, out.find('\n')), "regular file") << out;
  EXPECT_NE(out.find("symbolic link\ndirectory\n"), std::string::npos) << out;
  EXPECT_NE(out.find("No such file"), std::string::npos) << out;
  Must("DELETE", "/v1/sandboxes/traps", nullptr, 204);
}

// A plain file there is rewritten in place (no new inode: see
// PlaceFirstBootFiles), cut to its new length; one with a second name is
// replaced instead, so that the other name keeps what the sandbox wrote.
TEST_F(DaemonTest, StartRewritesLaunchFilesInPlaceOnlyWhenPlainWithOneName) {
  Must("POST", "/v1/sandboxes", {{"name", "inplace"}}, 201);
  auto restart = [&] {
    Must("POST", "/v1/sandboxes/inplace/stop", json::object());
    Must("POST", "/v1/sandboxes/inplace/start", json::object());
  };
  auto sh = [&](const std::string& command) -> std::string {
    return Must("POST", "/v1/sandboxes/inplace/exec", {{"command", command}, {"user", "root"}})["stdout"];
  };
  sh("echo JUNK > /etc/resolv.conf && ln /etc/resolv.conf /root/alias");
  restart();
  EXPECT_EQ(sh("cat /root/alias; stat -c %h /root/alias; grep -c nameserver /etc/resolv.conf"), "JUNK\n1\n1\n");
  sh("yes JUNK | head -c 100000 > /etc/resolv.conf && stat -c %i /etc/resolv.conf > /root/inode");
  restart();
  EXPECT_EQ(sh("grep -c JUNK /etc/resolv.conf; grep -c nameserver /etc/resolv.conf; "
               "[ $(stat -c %s /etc/resolv.conf) -lt 1000 ] && echo short; "
               "[ $(stat -c %i /etc/resolv.conf) = $(cat /root/inode) ] && echo same inode"),
            "0\n1\nshort\nsame inode\n");
  Must("DELETE", "/v1/sandboxes/inplace", nullptr, 204);
}

// A sandbox created with no limits gets the host's defaults: a fork bomb
// and a memory hog stay inside it, and it carries on.
TEST_F(DaemonTest, DefaultLimitsContainAForkBombAndAMemoryHog) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--default-pids", "64", "--default-memory", "96M", "--default-cpu", "500"};
  StartDaemon();
  json sb = Must("POST", "/v1/sandboxes", {{"name", "bomb"}}, 201);
  EXPECT_EQ(sb["pids"], 64);
  EXPECT_EQ(sb["memory"], 96 << 20);
  EXPECT_EQ(sb["cpu"], 500);
  // Explicit limits win over the defaults.
  json roomy = Must("POST", "/v1/sandboxes", {{"name", "roomy"}, {"pids", 200}}, 201);
  EXPECT_EQ(roomy["pids"], 200);
  EXPECT_EQ(roomy["memory"], 96 << 20);

  const char* bomb_script = R"py(
import os, signal, time
children = []
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
print(len(children))
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
)py";
  json bomb = Must("POST", "/v1/sandboxes/bomb/exec", {{"cmd", {"python3", "-c", bomb_script}}});
  std::string forked = bomb.value("stdout", "");
  ASSERT_FALSE(forked.empty()) << bomb.dump();
  EXPECT_LT(std::stoi(forked), 64) << bomb.dump();
  EXPECT_GT(std::stoi(forked), 10) << bomb.dump();
  json hog = Must("POST", "/v1/sandboxes/bomb/exec",
                  {{"cmd", {"python3", "-c", "x = bytearray(400 << 20); print('survived')"}}});
  EXPECT_EQ(hog.value("stdout", ""), "") << hog.dump();
  EXPECT_NE(hog["exit_code"], 0) << hog.dump();
  EXPECT_EQ(Must("POST", "/v1/sandboxes/bomb/exec", {{"command", "echo alive"}})["stdout"], "alive\n");
}

// A sandbox printing 3 GiB through a sync exec: the reply keeps the first
// 4 MiB of it and says it was cut; paddockd's memory hardly moves.
TEST_F(DaemonTest, ASyncExecPrintingThreeGigabytesIsCutAndTheDaemonStaysSmall) {
  Must("POST", "/v1/sandboxes", {{"name", "loud"}}, 201);
  int64_t before = PeakRssKb(pid_);
  json r = Must("POST", "/v1/sandboxes/loud/exec",
                {{"command", "yes | head -c 3221225472; echo done >&2"}, {"timeout", 300}});
  int64_t after = PeakRssKb(pid_);
  EXPECT_EQ(r["exit_code"], 0) << r.value("stderr", "");
  EXPECT_EQ(r["stdout"].get<std::string>().size(), size_t{4} << 20);
  EXPECT_EQ(r["stdout_truncated"], true);
  EXPECT_EQ(r["stderr"], "done\n");
  EXPECT_EQ(r["stderr_truncated"], false);
  EXPECT_LT(after - before, 64 * 1024) << "paddockd's peak grew from " << before << " to " << after << " kB";
  json small = Must("POST", "/v1/sandboxes/loud/exec",
                    {{"command", "yes | head -c 100"}, {"max_output", 10}});
  EXPECT_EQ(small["stdout"], "y\ny\ny\ny\ny\n");
  EXPECT_NE(MustFail("POST", "/v1/sandboxes/loud/exec",
                     R"({"command": "true", "max_output": 1000000000})", 400)
                .find("max_output"),
            std::string::npos);
  EXPECT_EQ(Must("POST", "/v1/sandboxes/loud/exec", {{"command", "echo alive"}})["stdout"], "alive\n");
}

// What a raw client on paddockd's socket got: the start and end of the
// response (headers included) and how many bytes it read in all.
struct RawRead {
  std::string head;
  std::string tail;
  uint64_t bytes = 0;
};

// Sends `request` and reads the answer until `limit` bytes came or the
// server ended it, then drops the connection: a client that stops reading
// part way, as a user with enough of a 64 GB download does.
RawRead ReadRaw(const std::string& socket_path, const std::string& request, uint64_t limit) {
  RawRead got;
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return got;
  // A server that answers before reading (a 503 past --max-connections) may
  // close first: the write then fails, but its answer is still there to read.
  (void)::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  std::vector<char> buf(1 << 20);
  while (got.bytes < limit) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n <= 0) break;
    got.bytes += static_cast<uint64_t>(n);
    if (got.head.size() < 4096) got.head.append(buf.data(), std::min<size_t>(n, 4096 - got.head.size()));
    got.tail.append(buf.data(), static_cast<size_t>(n));
    if (got.tail.size() > (64 << 10)) got.tail.erase(0, got.tail.size() - (64 << 10));
  }
  return got;
}

std::string Get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: paddock\r\nConnection: close\r\n\r\n";
}

// Uploads and downloads go through paddockd piece by piece: a 512 MiB
// upload, the first GiB of a 64 GiB sparse file and of a tar of it, and a
// 10 KB tar that unpacks to 1 TiB (refused as a bomb, nothing left behind)
// move paddockd's peak memory by less than 64 MiB.
TEST_F(DaemonTest, UploadsDownloadsAndArchiveBombsStreamThroughAFixedAmountOfMemory) {
  Must("POST", "/v1/sandboxes", {{"name", "files"}}, 201);
  Must("POST", "/v1/sandboxes/files/exec",
       {{"command", "mkdir -p /data/sub && truncate -s 64G /data/big && echo hi > /data/sub/x"}});
  int64_t before = PeakRssKb(pid_);

  std::string upload = state_->path() + "/upload.bin";
  Shell("head -c 1048576 /dev/urandom > " + upload + ".1 && for i in $(seq 512); do cat " + upload +
        ".1; done > " + upload);
  auto put = api().SendFile("PUT", "/v1/sandboxes/files/files?path=/data/up.bin", upload,
                            "application/octet-stream");
  ASSERT_TRUE(put.ok()) << put.status().ToString();
  ASSERT_EQ(put->status, 200) << put->body;
  EXPECT_EQ(put->Json()["size"], 512 << 20);
  json sum = Must("POST", "/v1/sandboxes/files/exec", {{"command", "sha256sum < /data/up.bin"}});
  EXPECT_EQ(sum["stdout"], Shell("sha256sum < " + upload));

  // Reading stops after 1 GiB: the old code read all 64 GiB into memory
  // before the first byte went out.
  RawRead file = ReadRaw(socket_, Get("/v1/sandboxes/files/files?path=/data/big"), uint64_t{1} << 30);
  EXPECT_EQ(file.head.rfind("HTTP/1.1 200", 0), 0u) << file.head.substr(0, 200);
  EXPECT_GE(file.bytes, uint64_t{1} << 30);
  RawRead tar = ReadRaw(socket_, Get("/v1/sandboxes/files/files/archive?path=/data"), uint64_t{1} << 30);
  EXPECT_EQ(tar.head.rfind("HTTP/1.1 200", 0), 0u) << tar.head.substr(0, 200);
  EXPECT_GE(tar.bytes, uint64_t{1} << 30);
  EXPECT_EQ(Must("POST", "/v1/sandboxes/files/exec", {{"command", "echo alive"}})["stdout"], "alive\n");

  // A whole small tree comes back with the names the host built.
  RawRead small = ReadRaw(socket_, Get("/v1/sandboxes/files/files/archive?path=/data/sub"), 1 << 20);
  EXPECT_NE(small.tail.find("x"), std::string::npos);
  EXPECT_NE(small.tail.find("hi\n"), std::string::npos);

  std::string sparse = state_->path() + "/huge";
  Shell("truncate -s 1T " + sparse + " && tar --sparse -C " + state_->path() + " -cf " + sparse +
        ".tar huge && rm " + sparse);
  auto bomb = api().SendFile("PUT", "/v1/sandboxes/files/files/archive?path=/bomb", sparse + ".tar",
                             "application/x-tar");
  ASSERT_TRUE(bomb.ok()) << bomb.status().ToString();
  EXPECT_EQ(bomb->status, 400) << bomb->body;
  EXPECT_NE(bomb->body.find("decompression bomb"), std::string::npos) << bomb->body;
  EXPECT_EQ(Must("POST", "/v1/sandboxes/files/exec", {{"command", "ls -A /bomb"}})["stdout"], "");

  int64_t after = PeakRssKb(pid_);
  EXPECT_LT(after - before, 64 * 1024) << "paddockd's peak grew from " << before << " to " << after << " kB";
}

// E2B's file upload (multipart, as the SDK and curl -F send it) streams to
// disk and then to the sandbox: 512 MiB leave paddockd's peak memory within
// 64 MiB of where it was. Without the sandbox's access token the upload is
// refused on its header, before a byte of its body is spooled.
TEST_F(DaemonTest, EnvdUploadsStreamAndNeedTheTokenBeforeTheirBody) {
  json created = Must("POST", "/v2/sandboxes", {{"templateID", "base"}}, 201);
  std::string id = created["sandboxID"], token = created["envdAccessToken"];
  std::string upload = state_->path() + "/upload.bin";
  Shell("head -c 1048576 /dev/urandom > " + upload + ".1 && for i in $(seq 512); do cat " + upload +
        ".1; done > " + upload);
  auto said = [&] {
    auto text = ReadFile(state_->path() + "/curl.out");
    return text.ok() ? *text : std::string();
  };
  auto curl = [&](const std::string& with_token, const std::string& path) {
    return Shell("curl -sS -o /dev/stderr -w '%{http_code}' --unix-socket " + socket_ + " -H 'E2b-Sandbox-Id: " +
                 id + "' -H 'X-Access-Token: " + with_token + "' -F 'file=@" + upload +
                 ";filename=ignored' 'http://x/files?path=" + path + "' 2>" + state_->path() + "/curl.out");
  };
  int64_t before = PeakRssKb(pid_);
  EXPECT_EQ(curl(token, "/data/up.bin"), "200") << said();
  json sum = Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "sha256sum < /data/up.bin"}});
  EXPECT_EQ(sum["stdout"], Shell("sha256sum < " + upload));
  int64_t after = PeakRssKb(pid_);
  EXPECT_LT(after - before, 64 * 1024) << "paddockd's peak grew from " << before << " to " << after << " kB";

  EXPECT_EQ(curl("wrong", "/data/nope.bin"), "401") << said();
  EXPECT_NE(said().find("access token"), std::string::npos) << said();
  EXPECT_TRUE(ListDir(state_->path() + "/state/uploads").empty());
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + id + "/exec", {{"command", "ls /data"}})["stdout"], "up.bin\n");
}

// A streamed exec whose reader stops: the process waits on its full pipe
// (it does not run ahead into init's or paddockd's memory), then everything
// arrives in order once the reader reads again. And 3 GiB streamed through
// leave paddockd's peak memory within 64 MiB of where it was.
TEST_F(DaemonTest, StreamedExecWaitsForASlowReaderAndStaysSmallOverThreeGigabytes) {
  Must("POST", "/v1/sandboxes", {{"name", "stream"}}, 201);
  const char* writer =
      "import os\n"
      "for n in range(1, 257):\n"
      "    os.write(1, b'y' * 65536)\n"
      "    open('/tmp/progress', 'w').write(str(n))\n";
  uint64_t received = 0;
  bool in_order = true;
  int written_while_stalled = -1;
  Status st = api().Stream(
      "POST", "/v1/sandboxes/stream/exec", json{{"cmd", {"python3", "-c", writer}}, {"stream", true}}.dump(),
      [&](const std::string& ev, const json& d) {
        if (ev != "stdout") return true;
        in_order = in_order && d.value("offset", uint64_t{0}) == received;
        received += d.value("data", "").size();
        if (written_while_stalled < 0) {
          ::sleep(2);  // stop reading: 16 MiB are on offer
          json progress = Must("POST", "/v1/sandboxes/stream/exec", {{"command", "cat /tmp/progress"}});
          written_while_stalled = std::stoi(progress.value("stdout", "0"));
        }
        return true;
      });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(in_order);
  EXPECT_EQ(received, uint64_t{16} << 20);
  // Buffers on the way (pipe, init's high-water mark, sockets) hold a few
  // MiB; without back-pressure init read all 16 MiB at once.
  EXPECT_GT(written_while_stalled, 0);
  EXPECT_LT(written_while_stalled, 128) << "64 KiB writes done while nobody read";

  int64_t before = PeakRssKb(pid_);
  RawRead loud = ReadRaw(
      socket_,
      "POST /v1/sandboxes/stream/exec HTTP/1.1\r\nHost: paddock\r\nConnection: close\r\n"
      "Content-Type: application/json\r\nContent-Length: 71\r\n\r\n"
      R"({"command": "yes | head -c 3221225472", "stream": true, "timeout": 300})",
      UINT64_MAX);
  int64_t after = PeakRssKb(pid_);
  EXPECT_EQ(loud.head.rfind("HTTP/1.1 200", 0), 0u) << loud.head.substr(0, 200);
  // "y\n" is 3 bytes in the events' JSON: at least 4.5 GB came through.
  EXPECT_GT(loud.bytes, (uint64_t{3} << 30) * 3 / 2);
  EXPECT_NE(loud.tail.find("event: exit\ndata: {\"exit_code\":0"), std::string::npos)
      << loud.tail.substr(loud.tail.size() > 300 ? loud.tail.size() - 300 : 0);
  EXPECT_LT(after - before, 64 * 1024) << "paddockd's peak grew from " << before << " to " << after << " kB";
}

// A client opening connections without end: past --max-connections each
// new one is answered 503 and closed, and the API serves again once they go.
TEST_F(DaemonTest, ConnectionsPastTheCapAreTurnedAwayAndServiceResumes) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--max-connections", "8"};
  StartDaemon();
  std::vector<UniqueFd> held;
  for (int i = 0; i < 8; ++i) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_.c_str());
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    held.push_back(std::move(fd));
  }
  ::usleep(200000);  // accepted by now
  RawRead turned = ReadRaw(socket_, Get("/v1/health"), 1 << 20);
  EXPECT_EQ(turned.head.rfind("HTTP/1.1 503", 0), 0u) << turned.head;
  EXPECT_NE(turned.head.find("--max-connections"), std::string::npos) << turned.head;
  held.clear();
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {
    auto health = api().Send("GET", "/v1/health");
    served = health.ok() && health->status == 200;
    if (!served) ::usleep(20000);
  }
  EXPECT_TRUE(served);
}

// An init that cannot answer (stopped here from the host, as a debugger
// inside once could) fails each call within seconds and shows as unhealthy;
// other sandboxes and listing carry on; continued, it answers and is healthy
// again. A request in flight does not hold a SIGTERM of paddockd.
TEST_F(DaemonTest, AStoppedInitFailsCallsFastAndNeverHoldsTheDaemon) {
  using Clock = std::chrono::steady_clock;
  auto seconds_since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  json stuck = Must("POST", "/v1/sandboxes", {{"name", "stuck"}}, 201);
  Must("POST", "/v1/sandboxes", {{"name", "other"}}, 201);
  pid_t init = stuck["init_pid"];
  ASSERT_EQ(::kill(init, SIGSTOP), 0);
  auto t0 = Clock::now();
  std::string err = MustFail("POST", "/v1/sandboxes/stuck/exec", json{{"command", "true"}}.dump(), 503);
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_NE(err.find("init is stopped"), std::string::npos) << err;
  t0 = Clock::now();
  err = MustFail("GET", "/v1/sandboxes/stuck/files?path=/etc/hostname", "", 503);
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_NE(err.find("init is stopped"), std::string::npos) << err;
  json got = Must("GET", "/v1/sandboxes/stuck");
  EXPECT_EQ(got["healthy"], false);
  EXPECT_NE(got["unhealthy"].get<std::string>().find("init is stopped"), std::string::npos) << got.dump();
  int listed_unhealthy = 0;
  json list = Must("GET", "/v1/sandboxes");
  for (const auto& s : list["sandboxes"])
    listed_unhealthy += s["healthy"] == false ? (s["name"] == "stuck" ? 1 : 100) : 0;
  EXPECT_EQ(listed_unhealthy, 1);
  EXPECT_EQ(Must("POST", "/v1/sandboxes/other/exec", {{"command", "echo alive"}})["stdout"], "alive\n");

  ASSERT_EQ(::kill(init, SIGCONT), 0);
  EXPECT_EQ(Must("POST", "/v1/sandboxes/stuck/exec", {{"command", "echo back"}})["stdout"], "back\n");
  got = Must("GET", "/v1/sandboxes/stuck");
  EXPECT_EQ(got["healthy"], true) << got.dump();
  EXPECT_TRUE(got["unhealthy"].is_null());

  std::thread slow([this] {
    (void)api().Send("POST", "/v1/sandboxes/other/exec", json{{"command", "sleep 60"}, {"timeout", 120}}.dump());
  });
  ::usleep(500000);  // the exec is waiting on its process by now
  t0 = Clock::now();
  StopDaemon(SIGTERM);
  EXPECT_LT(seconds_since(t0), 5.0);
  slow.join();
}

// A tree 5,000 folders deep (deeper than PATH_MAX, and than the descriptors
// a recursive walk could hold) is removed through the files API and by
// delete, and copied whole by a fork.
TEST_F(DaemonTest, FoldersFiveThousandDeepAreRemovedAndForkedLikeAnyOther) {
  const char* deep =
      "import os, sys\n"
      "os.makedirs(sys.argv[1], exist_ok=True); os.chdir(sys.argv[1])\n"
      "for _ in range(5000):\n"
      "    os.mkdir('d'); os.chdir('d')\n"
      "open('leaf', 'w').write('x')\n";
  // paddockd held to 4,096 descriptors, as many hosts give a service: a
  // walk holding two per level would run out at 2,048 levels. (Set once it
  // is up: it raises its soft limit to the hard one at start.)
  struct rlimit low = {4096, 4096};
  ASSERT_EQ(::prlimit(pid_, RLIMIT_NOFILE, &low, nullptr), 0);
  Must("POST", "/v1/sandboxes", {{"name", "deep"}}, 201);
  Must("POST", "/v1/sandboxes/deep/exec", {{"cmd", {"python3", "-c", deep, "/tmp/a"}}});
  Must("DELETE", "/v1/sandboxes/deep/files?path=/tmp/a", nullptr, 204);
  EXPECT_EQ(Must("POST", "/v1/sandboxes/deep/exec", {{"command", "ls /tmp/a 2>&1 | head -1"}})["stdout"],
            "ls: cannot access '/tmp/a': No such file or directory\n");
  Must("POST", "/v1/sandboxes/deep/exec", {{"cmd", {"python3", "-c", deep, "/tmp/b"}}});
  json forks = Must("POST", "/sandboxes/deep/fork", json::object(), 201);
  ASSERT_EQ(forks.size(), 1u) << forks.dump();
  ASSERT_TRUE(forks[0].contains("sandbox")) << forks.dump();
  std::string fork = forks[0]["sandbox"]["sandboxID"];
  const char* climb =
      "import os\n"
      "os.chdir('/tmp/b'); n = 0\n"
      "while os.path.isdir('d'): os.chdir('d'); n += 1\n"
      "print(n, open('leaf').read())\n";
  EXPECT_EQ(Must("POST", "/v1/sandboxes/" + fork + "/exec", {{"cmd", {"python3", "-c", climb}}})["stdout"],
            "5000 x\n");
  Must("DELETE", "/v1/sandboxes/" + fork, nullptr, 204);
  Must("DELETE", "/v1/sandboxes/deep", nullptr, 204);
  for (const auto& left : ListDir(state_->path() + "/state/sandboxes"))  // warm shells only
    EXPECT_EQ(left.rfind("warm-", 0), 0u) << left;
  ASSERT_TRUE(WaitForTeardowns());  // the trash is emptied after the delete's answer
  EXPECT_TRUE(ListDir(state_->path() + "/state/trash").empty());
}

// Streams and sync execs hold a request worker as long as they run; a
// client opening many could take every worker and stall the whole API.
// They are capped below the worker count (--max-streams): one over the cap
// is answered 503 at once, before its process starts, while plain
// requests keep answering.
TEST_F(DaemonTest, LongRequestsAreCappedSoPlainRequestsAlwaysAnswer) {
  StopDaemon(SIGTERM);
  extra_args_ = {"--max-streams", "2"};
  StartDaemon();
  Must("POST", "/v1/sandboxes", {{"name", "busy"}}, 201);
  std::thread sync([&] { Must("POST", "/v1/sandboxes/busy/exec", {{"command", "sleep 3"}}); });
  std::thread streamed([&] {
    auto r = api().Send("POST", "/v1/sandboxes/busy/exec", json{{"command", "sleep 3"}, {"stream", true}}.dump());
    ASSERT_TRUE(r.ok());
    EXPECT_NE(r->body.find("event: exit"), std::string::npos) << r->body;
  });
  ::usleep(800000);  // both are waiting on their sleeps by now
  auto t0 = std::chrono::steady_clock::now();
  std::string refused = MustFail("POST", "/v1/sandboxes/busy/exec", json{{"command", "touch /tmp/ran"}}.dump(), 503);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  EXPECT_NE(refused.find("--max-streams"), std::string::npos) << refused;
  // A batch create holds its worker as long: it is capped alike, before it makes anything.
  EXPECT_NE(MustFail("POST", "/v1/sandboxes:batch", R"({"count": 3})", 503).find("--max-streams"), std::string::npos);
  EXPECT_EQ(Must("GET", "/v1/sandboxes")["sandboxes"].size(), 1u);
  Must("GET", "/v1/sandboxes/busy");
  sync.join();
  streamed.join();
  // The refused exec never ran; with the slots back, execs run again.
  EXPECT_EQ(Must("POST", "/v1/sandboxes/busy/exec", {{"command", "test -e /tmp/ran && echo ran || echo never"}})["stdout"],
            "never\n");
}

// A host clean-up script removes a running sandbox's cgroups from outside
// (moving its processes to the root cgroup first, as the kernel demands).
// The sandbox can still be deleted: its processes are killed, its record
// and folder go.
TEST_F(DaemonTest, ASandboxWhoseCgroupsWereRemovedFromOutsideCanStillBeDeleted) {
  json sb = Must("POST", "/v1/sandboxes", {{"name", "orphan"}}, 201);
  std::string id = sb["id"];
  pid_t init = sb["init_pid"];
  auto hierarchies = kernel::ReadCgroupMounts();
  ASSERT_TRUE(hierarchies.ok()) << hierarchies.status().ToString();
  int removed = 0;
  for (const auto& h : *hierarchies)
    for (const auto& parent : ListDir(h.mount_point, /*dirs_only=*/true)) {
      std::string dir = h.mount_point + "/" + parent + "/" + id;
      if (parent.rfind("paddock", 0) != 0 || !PathExists(dir)) continue;
      auto procs = ReadFile(dir + "/cgroup.procs");
      ASSERT_TRUE(procs.ok());
      std::istringstream pids(*procs);
      for (std::string pid; pids >> pid;) ASSERT_TRUE(WriteExisting(h.mount_point + "/cgroup.procs", pid).ok());
      ASSERT_EQ(::rmdir(dir.c_str()), 0) << dir << ": " << std::strerror(errno);
      ++removed;
    }
  ASSERT_GT(removed, 0);
  ASSERT_EQ(::kill(init, 0), 0);  // still running, out of every cgroup of its own
  Must("DELETE", "/v1/sandboxes/orphan", nullptr, 204);
  MustFail("GET", "/v1/sandboxes/orphan", "", 404);
  for (int i = 0; i < 100 && ::kill(init, 0) == 0; ++i) ::usleep(20000);
  EXPECT_NE(::kill(init, 0), 0) << "init " << init << " outlived the delete";
}

}  // namespace
}  // namespace paddock::testing
