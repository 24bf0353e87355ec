// Warm shells: Create takes a sandbox-to-be from the pool, gives it the
// sandbox's id, name, folder and limits, and launches init in it; the pool
// refills; shells hold none of the daemon's files; nothing outlives the manager.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

class WarmShellTest : public SandboxTest {
 protected:
  // Swaps the suite's manager for one that keeps `n` busybox shells warm.
  void UseWarmManager(size_t n, int set_up_timeout_ms = 30000) {
    delete manager_;
    ManagerOptions opts = Options();
    opts.warm_shells = n;
    opts.set_up_timeout_ms = set_up_timeout_ms;
    opts.warm_templates = {"busybox"};
    auto m = SandboxManager::Open(opts);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = m->release();
  }
  // Back to the suite's plain manager; the warm one must take its shells along.
  void UseColdManager() {
    for (const auto& info : manager_->List()) EXPECT_TRUE(manager_->Delete(info.id).ok());
    delete manager_;
    auto m = SandboxManager::Open(Options());
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = m->release();
  }
  static bool WaitForWarmShells(size_t n) {
    for (int i = 0; i < 2000; ++i) {
      if (manager_->warm_shells_ready() == n) return true;
      ::usleep(2000);
    }
    return false;
  }
  static size_t WarmFolders() {
    auto names = ListDir(state_->path() + "/sandboxes");
    return std::count_if(names.begin(), names.end(),
                         [](const std::string& n) { return n.rfind("warm-", 0) == 0; });
  }
};

// The sandbox whose cgroup init is in, seen from the host: the last part of
// its cgroup path, the same in every hierarchy (v1) or the one (v2).
std::string InitIdentity(SandboxManager& manager, const std::string& id) {
  auto info = manager.Get(id);
  if (!info.ok()) return info.status().ToString();
  auto lines = ReadFile("/proc/" + std::to_string(info->init_pid) + "/cgroup");
  if (!lines.ok()) return lines.status().ToString();
  std::set<std::string> names;
  std::istringstream in(*lines);
  for (std::string line; std::getline(in, line);) {
    if (line.find(":/paddock") == std::string::npos) continue;  // v1 hierarchies Paddock does not use
    names.insert(line.substr(line.rfind('/') + 1));
  }
  if (names.size() != 1) return "cgroups named " + std::to_string(names.size()) + " ways: " + *lines;
  return *names.begin();
}

TEST_F(WarmShellTest, CreateTakesAWarmShellAndGivesItTheSandboxIdentity) {
  UseWarmManager(2);
  ASSERT_TRUE(WaitForWarmShells(2));
  EXPECT_EQ(WarmFolders(), 2u);

  SandboxSpec spec;
  spec.name = "warmbox";
  spec.template_name = "busybox";
  spec.limits.memory_bytes = 64 << 20;
  spec.limits.pids = 40;
  spec.env = {{"GREETING", "hi"}};
  SandboxInfo sb = Create(spec);
  ASSERT_FALSE(sb.id.empty());
  EXPECT_EQ(Sh(sb.id, "hostname; cat /etc/hostname; grep warmbox /etc/hosts | cut -f2"),
            "warmbox\nwarmbox\nwarmbox\n");
  // Made ahead and written in place; without a network the template's
  // resolv.conf (if any) is left as it was, not emptied.
  EXPECT_EQ(Sh(sb.id, "[ -e /etc/resolv.conf ] && [ ! -s /etc/resolv.conf ] && echo emptied; true"), "");
  EXPECT_EQ(Sh(sb.id, "echo $GREETING; tr '\\0' ' ' < /proc/1/cmdline"),
            "hi\npaddock-init --listen-fd 3 --launch-fd 5 ");
  EXPECT_EQ(InitIdentity(*manager_, sb.id), sb.id);
  // The cgroup carries the sandbox's id and its limits; inside, it is the root.
  EXPECT_EQ(Sh(sb.id, "cat /proc/self/cgroup | grep -c ':/$'"),
            Sh(sb.id, "wc -l < /proc/self/cgroup"));
  if (std::string(manager_->cgroup_version()) == "v1") {
    std::string dir = "/sys/fs/cgroup/memory/paddock/" + sb.id;
    auto limit = ReadFile(dir + "/memory.limit_in_bytes");
    ASSERT_TRUE(limit.ok()) << limit.status().ToString();
    EXPECT_EQ(*limit, std::to_string(64 << 20) + "\n");
    auto pids = ReadFile("/sys/fs/cgroup/pids/paddock/" + sb.id + "/pids.max");
    ASSERT_TRUE(pids.ok());
    EXPECT_EQ(*pids, "40\n");
  }
  // Files written by root inside belong to the sandbox's own id range.
  Sh(sb.id, "echo data > /root-file");
  struct stat st;
  ASSERT_EQ(::stat((sb.dir + "/upper/root-file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, sb.ids.host_first);

  // The pool refills behind the create.
  EXPECT_TRUE(WaitForWarmShells(2));
  EXPECT_EQ(WarmFolders(), 2u);

  // A warm-born sandbox stops and starts like any other, keeping its files.
  ASSERT_TRUE(manager_->Stop(sb.id, 0).ok());
  ASSERT_TRUE(manager_->Start(sb.id).ok());
  EXPECT_EQ(Sh(sb.id, "cat /root-file; hostname"), "data\nwarmbox\n");
  UseColdManager();
}

TEST_F(WarmShellTest, ConcurrentCreatesDrainThePoolAndFallBackToColdBoots) {
  UseWarmManager(2);
  ASSERT_TRUE(WaitForWarmShells(2));
  std::vector<std::thread> threads;
  std::vector<std::string> ids(6);
  for (size_t i = 0; i < ids.size(); ++i)
    threads.emplace_back([&, i] {
      SandboxSpec spec;
      spec.template_name = "busybox";
      auto info = manager_->Create(spec);
      EXPECT_TRUE(info.ok()) << info.status().ToString();
      if (info.ok()) ids[i] = info->id;
    });
  for (auto& t : threads) t.join();
  for (const auto& id : ids) {
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(InitIdentity(*manager_, id), id);
  }
  UseColdManager();
}

TEST_F(WarmShellTest, WarmShellsHoldNoneOfTheDaemonsFiles) {
  // A shell is cloned from the daemon; were it to keep the daemon's fds while
  // it waits, a connection the daemon closes would stay open. Our pipe stands
  // in for such a connection: its write end is open while the shells are made.
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UseWarmManager(2);
  ASSERT_TRUE(WaitForWarmShells(2));
  ::close(p[1]);
  struct pollfd pfd = {p[0], POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 2000), 1) << "a warm shell holds the pipe's write end";
  EXPECT_TRUE(pfd.revents & POLLHUP);
  ::close(p[0]);
  UseColdManager();
}

// A warm shell whose set-up never answers the launch (stopped here, as a
// hang would leave it) is killed once the set-up timeout passes, and the
// create boots a sandbox of its own instead of waiting forever.
TEST_F(WarmShellTest, AShellThatDoesNotAnswerItsLaunchIsKilledAndTheCreateBootsCold) {
  UseWarmManager(1, 1000);
  ASSERT_TRUE(WaitForWarmShells(1));
  // The shell: our child, in a pid namespace of its own, not exec'd yet.
  auto pid_ns = [](const std::string& proc) {
    struct stat st {};
    return ::stat((proc + "/ns/pid").c_str(), &st) == 0 ? st.st_ino : 0;
  };
  pid_t shell = -1;
  ino_t own_ns = pid_ns("/proc/self");
  for (const auto& name : ListDir("/proc")) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto stat = ReadFile("/proc/" + name + "/stat");
    ino_t ns = pid_ns("/proc/" + name);
    if (!stat.ok() || ns == 0 || ns == own_ns) continue;
    std::istringstream fields(stat->substr(stat->rfind(')') + 2));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == ::getpid()) shell = std::stoi(name);
  }
  ASSERT_GT(shell, 0);
  ASSERT_EQ(::kill(shell, SIGSTOP), 0);

  auto t0 = std::chrono::steady_clock::now();
  SandboxInfo sb = Create([] {
    SandboxSpec spec;
    spec.template_name = "busybox";
    return spec;
  }());
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(sb.id.empty());
  EXPECT_GE(waited, std::chrono::milliseconds(1000));
  EXPECT_LT(waited, std::chrono::seconds(10));
  EXPECT_EQ(Sh(sb.id, "echo booted"), "booted\n");
  EXPECT_NE(sb.init_pid, shell);
  EXPECT_NE(::kill(shell, 0), 0) << "the stopped shell was killed and reaped";
  UseColdManager();
}

}  // namespace
}  // namespace paddock::testing
