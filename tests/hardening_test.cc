// Issue 12's doors, each tried as an attacker would, from inside a sandbox
// or from the host: each must fail fast, and the sandbox, the daemon and
// the other sandboxes carry on; the host is left clean.
#include <fcntl.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

// paddockd's peak resident memory so far (kB).
int64_t PeakRssKb(pid_t pid) {
  auto status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!status.ok()) return -1;
  size_t at = status->find("VmHWM:");
  return at == std::string::npos ? -1 : std::stoll(status->substr(at + 6));
}

// A sandbox printing 1 GiB through a sync exec: the reply keeps the first
// 4 MiB of it and says it was cut; paddockd's memory hardly moves.
TEST_F(DaemonTest, ASyncExecPrintingAGigabyteIsCutAndTheDaemonStaysSmall) {
  Must("POST", "/v1/sandboxes", {{"name", "loud"}}, 201);
  int64_t before = PeakRssKb(pid_);
  json r = Must("POST", "/v1/sandboxes/loud/exec",
                {{"command", "yes | head -c 1073741824; echo done >&2"}, {"timeout", 120}});
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

// A tree 5,000 folders deep (deeper than PATH_MAX, and than the descriptors
// a recursive walk could hold) is removed through the files API, by delete,
// and by the start-up sweep.
TEST_F(DaemonTest, FoldersFiveThousandDeepAreRemovedLikeAnyOther) {
  const char* deep =
      "import os, sys\n"
      "os.makedirs(sys.argv[1], exist_ok=True); os.chdir(sys.argv[1])\n"
      "for _ in range(5000):\n"
      "    os.mkdir('d'); os.chdir('d')\n"
      "open('leaf', 'w').write('x')\n";
  // paddockd with 4,096 descriptors, as many hosts give a service: a walk
  // holding two per level would run out at 2,048 levels.
  struct rlimit saved {};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  struct rlimit low = {4096, saved.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  StopDaemon(SIGTERM);
  StartDaemon();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  Must("POST", "/v1/sandboxes", {{"name", "deep"}}, 201);
  Must("POST", "/v1/sandboxes/deep/exec", {{"cmd", {"python3", "-c", deep, "/tmp/a"}}});
  Must("DELETE", "/v1/sandboxes/deep/files?path=/tmp/a", nullptr, 204);
  EXPECT_EQ(Must("POST", "/v1/sandboxes/deep/exec", {{"command", "ls /tmp/a 2>&1 | head -1"}})["stdout"],
            "ls: cannot access '/tmp/a': No such file or directory\n");
  Must("POST", "/v1/sandboxes/deep/exec", {{"cmd", {"python3", "-c", deep, "/tmp/b"}}});
  Must("DELETE", "/v1/sandboxes/deep", nullptr, 204);
  EXPECT_TRUE(ListDir(state_->path() + "/state/sandboxes").size() <= 8u);  // warm shells only
  EXPECT_TRUE(ListDir(state_->path() + "/state/trash").empty());
}

}  // namespace
}  // namespace paddock::testing
