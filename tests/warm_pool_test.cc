#include "base/warm_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

namespace paddock {
namespace {

using namespace std::chrono_literals;

// Items that count themselves: every one made must be discarded exactly
// once, or be in a test's hands.
struct Thing {
  std::string key;
  int serial = 0;
};

class WarmPoolTest : public ::testing::Test {
 protected:
  using Pool = WarmPool<Thing>;

  Pool::Hooks Hooks() {
    return {.make = [this](const std::string& key) -> Result<std::unique_ptr<Thing>> {
              MutexLock lock(mu_);
              if (broken_.count(key)) {
                ++failures_[key];
                return Unavailable("cannot make " + key);
              }
              ++made_;
              return std::make_unique<Thing>(Thing{key, made_});
            },
            .discard = [this](std::unique_ptr<Thing> t) {
              MutexLock lock(mu_);
              discarded_.insert(t->serial);
            }};
  }
  // Polls (up to 5 s) until `done` holds.
  template <typename F>
  static bool Eventually(F done) {
    for (int i = 0; i < 500; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return done();
  }
  int made() {
    MutexLock lock(mu_);
    return made_;
  }
  size_t discarded() {
    MutexLock lock(mu_);
    return discarded_.size();
  }
  int failures(const std::string& key) {
    MutexLock lock(mu_);
    return failures_[key];
  }
  void Break(const std::string& key) {
    MutexLock lock(mu_);
    broken_.insert(key);
  }
  void Mend(const std::string& key) {
    MutexLock lock(mu_);
    broken_.erase(key);
  }

  Mutex mu_;
  int made_ GUARDED_BY(mu_) = 0;
  std::set<int> discarded_ GUARDED_BY(mu_);
  std::set<std::string> broken_ GUARDED_BY(mu_);
  std::map<std::string, int> failures_ GUARDED_BY(mu_);
};

TEST_F(WarmPoolTest, KeepsEachKeyAtItsTargetAndRefillsWhatIsTaken) {
  Pool pool(Hooks());
  (void)pool.SetTarget("a", 2);
  (void)pool.SetTarget("b", 1);
  EXPECT_EQ(pool.Take("a"), nullptr);  // nothing made before Start
  pool.Start();
  ASSERT_TRUE(Eventually([&] { return pool.ready("a") == 2 && pool.ready("b") == 1; }));
  auto first = pool.Take("a");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->key, "a");
  EXPECT_EQ(pool.Take("c"), nullptr);  // no such key
  ASSERT_TRUE(Eventually([&] { return pool.ready("a") == 2; }));
  EXPECT_EQ(made(), 4);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(made(), 4) << "made beyond the targets";
  pool.Stop();
  EXPECT_EQ(discarded(), 3u);  // all but the one taken
}

TEST_F(WarmPoolTest, ALoweredTargetHandsBackTheExtraAndADroppedKeyIsNotRefilled) {
  Pool pool(Hooks());
  (void)pool.SetTarget("a", 3);
  pool.Start();
  ASSERT_TRUE(Eventually([&] { return pool.ready("a") == 3; }));
  auto extra = pool.SetTarget("a", 1);
  EXPECT_EQ(extra.size(), 2u);
  EXPECT_EQ(pool.ready("a"), 1u);
  pool.Discard(std::move(extra));
  EXPECT_EQ(discarded(), 2u);
  EXPECT_EQ(pool.SetTarget("a", 0).size(), 1u);
  EXPECT_EQ(pool.ready(), 0u);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(made(), 3);
}

TEST_F(WarmPoolTest, AKeyThatFailsBacksOffWithoutStarvingTheOthers) {
  Pool pool(Hooks(), {.retry_after = 200ms, .idle_life = 60s});
  Break("broken");
  (void)pool.SetTarget("broken", 1);  // first in order
  (void)pool.SetTarget("fine", 2);
  pool.Start();
  ASSERT_TRUE(Eventually([&] { return pool.ready("fine") == 2; }));
  std::this_thread::sleep_for(500ms);
  int tries = failures("broken");
  EXPECT_GE(tries, 1);
  EXPECT_LE(tries, 4) << "retried without backing off";
  EXPECT_EQ(pool.ready("broken"), 0u);
}

TEST_F(WarmPoolTest, ItemsGivenBackAreKeptUpToTheCapAndGoWhenIdle) {
  Pool pool(Hooks(), {.retry_after = 1s, .idle_life = 300ms});
  (void)pool.SetTarget("k", 1);
  pool.Start();
  ASSERT_TRUE(Eventually([&] { return pool.ready("k") == 1; }));
  auto a = pool.Take("k");
  ASSERT_TRUE(Eventually([&] { return pool.ready("k") == 1; }));
  auto b = pool.Take("k");
  ASSERT_TRUE(Eventually([&] { return pool.ready("k") == 1; }));
  int b_serial = b->serial;
  EXPECT_EQ(pool.Put("k", std::move(a), 2), nullptr);  // kept: 2 ready
  auto refused = pool.Put("k", std::move(b), 2);         // full: handed back
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->serial, b_serial);
  EXPECT_EQ(pool.ready("k"), 2u);
  // Nothing taken for idle_life: the surplus beyond the target goes.
  ASSERT_TRUE(Eventually([&] { return pool.ready("k") == 1; }));
  EXPECT_EQ(discarded(), 1u);
  pool.Stop();
  EXPECT_EQ(pool.Put("k", std::move(refused), 5)->key, "k");  // stopped: handed back
  EXPECT_EQ(pool.Take("k"), nullptr);
}

TEST_F(WarmPoolTest, MissesGrowAKeyUpToItsCeilingAndIdleShrinksItBack) {
  Pool pool(Hooks(), {.retry_after = 50ms, .idle_life = 1s});
  (void)pool.SetTarget("k", 1, 4);
  (void)pool.SetTarget("fixed", 1);  // no ceiling: never grows
  pool.Start();
  ASSERT_TRUE(Eventually([&] { return pool.ready("k") == 1 && pool.ready("fixed") == 1; }));
  // While nothing can be made, every take after the first misses: a burst
  // of six raises the target by five, but only up to 4.
  Break("k");
  Break("fixed");
  std::vector<std::unique_ptr<Thing>> taken;
  for (int i = 0; i < 6; ++i)
    if (auto t = pool.Take("k")) taken.push_back(std::move(t));
  EXPECT_EQ(taken.size(), 1u);
  EXPECT_EQ(pool.target("k"), 4u);
  for (int i = 0; i < 3; ++i)
    if (auto t = pool.Take("fixed")) taken.push_back(std::move(t));
  EXPECT_EQ(taken.size(), 2u);
  EXPECT_EQ(pool.target("fixed"), 1u);
  Mend("k");
  Mend("fixed");
  ASSERT_TRUE(Eventually([&] { return pool.ready("k") == 4 && pool.ready("fixed") == 1; }));
  // SetTarget again with the same bounds keeps what was learnt.
  EXPECT_TRUE(pool.SetTarget("k", 1, 4).empty());
  EXPECT_EQ(pool.target("k"), 4u);
  // Nothing asked for idle_life: back to 1, the three extra discarded.
  ASSERT_TRUE(Eventually([&] { return pool.target("k") == 1 && pool.ready("k") == 1; }));
  EXPECT_EQ(discarded(), 3u);
  // A lower ceiling clamps a grown target at once.
  Break("k");
  for (int i = 0; i < 4; ++i)
    if (auto t = pool.Take("k")) taken.push_back(std::move(t));
  EXPECT_EQ(pool.target("k"), 4u);
  pool.Discard(pool.SetTarget("k", 1, 2));
  EXPECT_EQ(pool.target("k"), 2u);
  pool.Stop();
}

TEST_F(WarmPoolTest, ManyThreadsTakeAndGiveBackWhileItRefills) {
  Pool pool(Hooks(), {.retry_after = 10ms, .idle_life = 60s});
  (void)pool.SetTarget("x", 4);
  (void)pool.SetTarget("y", 4);
  pool.Start();
  std::atomic<int> taken = 0, kept_by_test = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      const std::string key = t % 2 ? "x" : "y";
      for (int i = 0; i < 200; ++i) {
        if (auto item = pool.Take(key)) {
          ++taken;
          EXPECT_EQ(item->key, key);
          if (i % 3 == 0) item = pool.Put(key, std::move(item), 6);
          if (item) ++kept_by_test;  // destroyed here, not through the pool
        }
        if (i % 50 == 0) pool.Discard(pool.SetTarget(key, 3 + i % 2));
        std::this_thread::sleep_for(100us);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_GT(taken.load(), 0);
  pool.Stop();
  EXPECT_EQ(pool.ready(), 0u);
  // Every item made went exactly one way: to the test, or to discard.
  EXPECT_EQ(static_cast<size_t>(made()), discarded() + kept_by_test.load());
}

}  // namespace
}  // namespace paddock
