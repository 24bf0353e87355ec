// Limits hold: memory (OOM inside only), pids (fork bomb), CPU (quota ratio).
#include <time.h>

#include "sandbox_fixture.h"

namespace paddock::testing {
namespace {

TEST_F(SandboxTest, MemoryHogIsOomKilledInsideOnly) {
  SandboxSpec spec;
  spec.limits.memory_bytes = 64 << 20;
  SandboxInfo small = Create(spec);
  SandboxInfo other = Create();
  auto r = Exec(small.id, {"python3", "-c",
                           "b = []\nwhile True: b.append(bytearray(8 << 20))"});
  EXPECT_EQ(r.signal, 9) << "exit " << r.exit_code << " " << r.stderr_data;
  auto stats = manager_->Stats(small.id);
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->oom_kills, 1u);
  // The sandbox's init and the other sandbox carry on.
  EXPECT_EQ(Sh(small.id, "echo alive"), "alive\n");
  EXPECT_EQ(Sh(other.id, "echo alive"), "alive\n");
}

TEST_F(SandboxTest, ForkBombStopsAtThePidsLimit) {
  SandboxSpec spec;
  spec.limits.pids = 32;
  SandboxInfo sb = Create(spec);
  // Fork until the kernel refuses; children wait on a pipe so they all live at once.
  auto r = Exec(sb.id, {"python3", "-c",
                        "import os, errno\n"
                        "r, w = os.pipe()\n"
                        "n = 0\n"
                        "while n < 1000:\n"
                        "    try:\n"
                        "        pid = os.fork()\n"
                        "    except OSError as e:\n"
                        "        print(n, errno.errorcode[e.errno]); break\n"
                        "    if pid == 0:\n"
                        "        os.close(w); os.read(r, 1); os._exit(0)\n"
                        "    n += 1\n"
                        "os.close(w)\n"});
  // init + python + n children <= 32
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  int forked = std::atoi(r.stdout_data.c_str());
  EXPECT_GT(forked, 20);
  EXPECT_LE(forked, 30);
  EXPECT_NE(r.stdout_data.find("EAGAIN"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(Sh(sb.id, "echo alive"), "alive\n");
}

TEST_F(SandboxTest, CpuHogIsHeldToItsQuota) {
  SandboxSpec spec;
  spec.limits.cpu_millicores = 250;
  SandboxInfo sb = Create(spec);
  auto before = manager_->Stats(sb.id);
  ASSERT_TRUE(before.ok());
  timespec t0, t1;
  ::clock_gettime(CLOCK_MONOTONIC, &t0);
  // Two busy loops want two cores; the quota allows a quarter of one.
  Sh(sb.id, "timeout 1.5 sh -c 'while :; do :; done' & timeout 1.5 sh -c 'while :; do :; done'; wait; true");
  ::clock_gettime(CLOCK_MONOTONIC, &t1);
  auto after = manager_->Stats(sb.id);
  ASSERT_TRUE(after.ok());
  double wall_ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  double ratio = static_cast<double>(after->cpu_usage_ns - before->cpu_usage_ns) / wall_ns;
  EXPECT_GT(ratio, 0.15);
  EXPECT_LT(ratio, 0.35) << "used " << ratio << " of a core with a 0.25 quota";
}

TEST_F(SandboxTest, LimitsAreValidated) {
  SandboxSpec spec;
  spec.limits.memory_bytes = 1024;
  auto r = manager_->Create(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  spec.limits.memory_bytes = 0;
  spec.limits.cpu_millicores = -5;
  EXPECT_EQ(manager_->Create(spec).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace paddock::testing
