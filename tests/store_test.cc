#include "store/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/fs.h"

namespace paddock {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pdk-store-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    auto s = OpenSqliteStore(dir_ + "/paddock.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    (void)RemoveTree(dir_);
  }
  SandboxRecord Record(const std::string& id, const std::string& name) {
    SandboxRecord r;
    r.id = id;
    r.name = name;
    r.template_name = "host";
    r.state = "creating";
    r.created_at_ms = WallClockMillis();
    r.env = {{"A", "1"}};
    r.metadata = {{"team", "rl"}, {"quote", "it's \"fine\""}};
    r.init_start_time = 1234567890123ull;
    r.id_base = 1u << 30;
    return r;
  }
  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, RecordsRoundTripAndSurviveReopen) {
  ASSERT_TRUE(store_->Insert(Record("a1", "alpha"), {"create", "intent", "alpha"}).ok());
  SandboxRecord r = *store_->Get("a1");
  r.state = "running";
  r.init_pid = 42;
  r.timeout_at_ms = 99;
  r.address = "10.88.0.2";
  r.forwards = R"([{"bind":"127.0.0.1","host_port":2222,"port":22}])";
  r.archive_after_s = 3600;
  r.archived_at_ms = 1234;
  r.archive_sha256 = std::string(64, 'a');
  r.archive_size = 4096;
  r.restore_ms = 17;
  ASSERT_TRUE(store_->Update(r, {"create", "done", ""}).ok());
  store_.reset();
  store_ = std::move(OpenSqliteStore(dir_ + "/paddock.db")).value();
  auto back = store_->Get("a1");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->state, "running");
  EXPECT_EQ(back->init_pid, 42);
  EXPECT_EQ(back->timeout_at_ms, 99);
  EXPECT_EQ(back->metadata.at("quote"), "it's \"fine\"");
  EXPECT_EQ(back->env.at("A"), "1");
  EXPECT_EQ(back->init_start_time, 1234567890123ull);
  EXPECT_EQ(back->id_base, 1u << 30);
  EXPECT_EQ(back->address, "10.88.0.2");
  EXPECT_EQ(back->forwards, r.forwards);
  EXPECT_EQ(back->archive_after_s, 3600);
  EXPECT_EQ(back->archived_at_ms, 1234);
  EXPECT_EQ(back->archive_sha256, r.archive_sha256);
  EXPECT_EQ(back->archive_size, 4096);
  EXPECT_EQ(back->restore_ms, 17);
  auto journal = store_->ReadJournal("a1");
  ASSERT_TRUE(journal.ok());
  ASSERT_EQ(journal->size(), 2u);
  EXPECT_EQ((*journal)[0].phase, "intent");
  EXPECT_EQ((*journal)[1].phase, "done");
}

TEST_F(StoreTest, ArchivesOutliveTheirSandboxesAndReopen) {
  ArchiveRecord a{"arc-1", "sb-1", "work", "docker.io/library/python:3", "sha256:img", "", "/home", 100, 300,
                  std::string(64, 'b'), 5};
  ASSERT_TRUE(store_->PutArchive(a).ok());
  EXPECT_EQ(store_->PutArchive(a).code(), StatusCode::kAlreadyExists);
  a.id = "arc-2";
  a.created_at_ms = 6;
  ASSERT_TRUE(store_->PutArchive(a).ok());
  store_.reset();
  store_ = std::move(OpenSqliteStore(dir_ + "/paddock.db")).value();
  auto all = store_->ListArchives();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, "arc-1");
  EXPECT_EQ((*all)[0].template_name, "docker.io/library/python:3");
  EXPECT_EQ((*all)[0].path, "/home");
  EXPECT_EQ((*all)[0].bytes, 300);
  EXPECT_EQ((*all)[0].sha256, std::string(64, 'b'));
  ASSERT_TRUE(store_->RemoveArchive("arc-1").ok());
  EXPECT_EQ(store_->ListArchives()->size(), 1u);
}

TEST_F(StoreTest, NamesAndIdsAreUniqueAndAFailedChangeWritesNothing) {
  ASSERT_TRUE(store_->Insert(Record("a1", "alpha")).ok());
  auto clash = store_->Insert(Record("a2", "alpha"), {"create", "intent", ""});
  EXPECT_EQ(clash.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Get("a2").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->ReadJournal("a2")->empty());  // the journal entry rolled back too
  EXPECT_EQ(store_->Insert(Record("a1", "beta")).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Update(Record("zz", "zz")).code(), StatusCode::kNotFound);
  ASSERT_TRUE(store_->Remove("a1", {"delete", "done", ""}).ok());
  EXPECT_TRUE(store_->List()->empty());
  ASSERT_TRUE(store_->Insert(Record("a3", "alpha")).ok());  // the name is free again
}

TEST_F(StoreTest, RefusesANewerSchema) {
  store_.reset();
  {
    auto s = OpenSqliteStore(dir_ + "/paddock.db");
    ASSERT_TRUE(s.ok());
  }
  // Pretend a newer paddockd wrote this database.
  std::string cmd = "python3 -c \"import sqlite3; c=sqlite3.connect('" + dir_ +
                    "/paddock.db'); c.execute('PRAGMA user_version=99'); c.commit()\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto s = OpenSqliteStore(dir_ + "/paddock.db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("99"), std::string::npos);
}

TEST_F(StoreTest, ImagesKeepTheirRefsConfigAndSandboxLinks) {
  ImageRecord a;
  a.id = "sha256:aaa";
  a.manifest_digest = "sha256:m1";
  a.config = R"({"rootfs":{"diff_ids":[]}})";
  a.layers = "[]";
  a.size = 42;
  a.created_at_ms = 1;
  a.refs = {"docker.io/library/a:1", "docker.io/library/a:latest"};
  ASSERT_TRUE(store_->PutImage(a).ok());
  ImageRecord b = a;
  b.id = "sha256:bbb";
  b.created_at_ms = 2;
  b.refs = {"docker.io/library/a:latest"};  // the tag moves to the new image
  ASSERT_TRUE(store_->PutImage(b).ok());
  auto images = store_->ListImages();
  ASSERT_TRUE(images.ok());
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].refs, std::vector<std::string>{"docker.io/library/a:1"});
  EXPECT_EQ((*images)[1].refs, std::vector<std::string>{"docker.io/library/a:latest"});
  EXPECT_EQ((*images)[0].config, a.config);
  // A known image with a new ref and no config keeps its stored config.
  ImageRecord again = a;
  again.config = "";
  again.refs = {"docker.io/library/a:again"};
  ASSERT_TRUE(store_->PutImage(again).ok());
  ASSERT_TRUE(store_->TouchImage(a.id, 99).ok());
  images = store_->ListImages();
  EXPECT_EQ((*images)[0].config, a.config);
  EXPECT_EQ((*images)[0].last_used_ms, 99);
  EXPECT_EQ((*images)[0].refs.size(), 2u);
  ASSERT_TRUE(store_->RemoveImageRef("docker.io/library/a:again").ok());
  ASSERT_TRUE(store_->RemoveImage(b.id).ok());  // its refs go with it
  images = store_->ListImages();
  ASSERT_EQ(images->size(), 1u);
  EXPECT_EQ((*images)[0].refs, std::vector<std::string>{"docker.io/library/a:1"});

  SandboxRecord r = Record("s1", "one");
  r.image_id = a.id;
  ASSERT_TRUE(store_->Insert(r).ok());
  EXPECT_EQ(store_->Get("s1").value().image_id, a.id);
}

TEST_F(StoreTest, SnapshotsAreUniqueByIdAndNameAndSandboxesNameTheirs) {
  SnapshotRecord a{"snap-a", "base", "sb1", "busybox", "", "", 4096, 10};
  SnapshotRecord b{"snap-b", "", "sb1", "busybox", "", "snap-a", 10, 20};
  SnapshotRecord c{"snap-c", "", "sb2", "python:3", "sha256:abc", "", 0, 30};
  ASSERT_TRUE(store_->PutSnapshot(a).ok());
  ASSERT_TRUE(store_->PutSnapshot(b).ok());
  ASSERT_TRUE(store_->PutSnapshot(c).ok());  // unnamed ones do not clash
  SnapshotRecord dup_name{"snap-d", "base", "sb3", "host", "", "", 0, 40};
  EXPECT_EQ(store_->PutSnapshot(dup_name).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->PutSnapshot(a).code(), StatusCode::kAlreadyExists);

  SandboxRecord r = Record("sb9", "from-snap");
  r.snapshot_id = "snap-b";
  ASSERT_TRUE(store_->Insert(r).ok());
  store_.reset();  // survives a reopen
  auto reopened = OpenSqliteStore(dir_ + "/paddock.db");
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(*reopened);
  auto list = store_->ListSnapshots();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "base");
  EXPECT_EQ((*list)[1].parent, "snap-a");
  EXPECT_EQ((*list)[2].image_id, "sha256:abc");
  EXPECT_EQ((*list)[0].size, 4096);
  EXPECT_EQ(store_->Get("sb9")->snapshot_id, "snap-b");
  ASSERT_TRUE(store_->RemoveSnapshot("snap-a").ok());
  EXPECT_EQ(store_->ListSnapshots()->size(), 2u);
  EXPECT_TRUE(store_->PutSnapshot(dup_name).ok());  // the name is free again
}

TEST_F(StoreTest, TemplatesNameSnapshotsThatStayWhileNamed) {
  SnapshotRecord step{"snap-1", "", "sb1", "busybox", "", "", 10, 10, "", "key-1"};
  SnapshotRecord top{"snap-2", "", "", "busybox", "", "snap-1", 0, 20, R"({"start":"serve"})", "key-2"};
  ASSERT_TRUE(store_->PutSnapshot(step).ok());
  ASSERT_TRUE(store_->PutSnapshot(top).ok());
  ASSERT_TRUE(store_->PutTemplate({"web", "snap-2", "bld-1", 30}).ok());
  ASSERT_TRUE(store_->PutTemplate({"web:v1", "snap-2", "bld-1", 30}).ok());
  EXPECT_EQ(store_->PutTemplate({"ghost", "snap-none", "bld-2", 40}).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->RemoveSnapshot("snap-2").code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->PutTemplate({"web", "snap-1", "bld-3", 50}).ok());  // a rebuild moves the name
  store_.reset();
  auto reopened = OpenSqliteStore(dir_ + "/paddock.db");
  ASSERT_TRUE(reopened.ok());
  store_ = std::move(*reopened);
  auto templates = store_->ListTemplates();
  ASSERT_TRUE(templates.ok());
  ASSERT_EQ(templates->size(), 2u);
  EXPECT_EQ((*templates)[0].name, "web");
  EXPECT_EQ((*templates)[0].snapshot_id, "snap-1");
  EXPECT_EQ((*templates)[0].build_id, "bld-3");
  EXPECT_EQ((*templates)[1].name, "web:v1");
  auto snaps = store_->ListSnapshots();
  ASSERT_TRUE(snaps.ok());
  EXPECT_EQ((*snaps)[1].config, R"({"start":"serve"})");
  EXPECT_EQ((*snaps)[1].build_key, "key-2");
  ASSERT_TRUE(store_->RemoveTemplate("web:v1").ok());
  EXPECT_TRUE(store_->RemoveSnapshot("snap-2").ok());
}

// Every transition writes journal entries; a farm churning sandboxes would
// grow the database without end. Only the newest are kept, the database
// file stays the size they need, and records are untouched by the trims.
TEST_F(StoreTest, TheJournalKeepsItsNewestEntriesAndTheDatabaseStopsGrowing) {
  store_.reset();
  store_ = std::move(OpenSqliteStore(dir_ + "/paddock.db", 1000)).value();
  ASSERT_TRUE(store_->Insert(Record("kept", "kept"), {"create", "intent", ""}).ok());
  auto churn = [&](int sandboxes) {  // as a create and a delete write them: four entries each
    for (int i = 0; i < sandboxes; ++i) {
      std::string id = "c" + std::to_string(i);
      ASSERT_TRUE(store_->Insert(Record(id, id), {"create", "intent", id}).ok());
      SandboxRecord r = *store_->Get(id);
      r.state = "running";
      ASSERT_TRUE(store_->Update(r, {"create", "done", ""}).ok());
      r.state = "deleting";
      ASSERT_TRUE(store_->Update(r, {"delete", "intent", ""}).ok());
      ASSERT_TRUE(store_->Remove(id, {"delete", "done", ""}).ok());
    }
  };
  churn(2500);
  auto size_of = [&](const std::string& name) {
    struct stat st;
    return ::stat((dir_ + "/" + name).c_str(), &st) == 0 ? st.st_size : 0;
  };
  int64_t db_bytes = size_of("paddock.db") + size_of("paddock.db-wal");
  churn(2500);  // 10,000 more entries, ten times what is kept
  auto all = store_->ReadJournal("");
  ASSERT_TRUE(all.ok());
  EXPECT_GE(all->size(), 1000u);
  EXPECT_LE(all->size(), 1010u);  // trimmed every hundredth of what is kept
  int64_t last = *store_->Journal("kept", "probe", "done", "");
  auto newest = store_->ReadJournal("");
  EXPECT_EQ(newest->back().seq, last);
  for (size_t i = 1; i < newest->size(); ++i) EXPECT_EQ((*newest)[i].seq, (*newest)[i - 1].seq + 1);
  EXPECT_EQ(newest->front().seq, last - static_cast<int64_t>(newest->size()) + 1);
  EXPECT_TRUE(store_->ReadJournal("c0")->empty());  // the first sandboxes' entries went
  EXPECT_EQ(store_->Get("kept")->state, "creating");
  // The second half added nothing to the file: freed pages were reused.
  EXPECT_LE(size_of("paddock.db") + size_of("paddock.db-wal"), db_bytes + 64 * 1024)
      << "before " << db_bytes;
}

}  // namespace
}  // namespace paddock
