// SqliteStore: the embedded Store, one SQLite database in WAL mode.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "store/store.h"

namespace paddock {

int64_t WallClockMillis() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

namespace {

// Each entry moves the schema from version i to i+1; never edit one that has
// shipped, append a new one.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE sandboxes (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      template TEXT NOT NULL,
      state TEXT NOT NULL,
      memory_bytes INTEGER NOT NULL DEFAULT 0,
      cpu_millicores INTEGER NOT NULL DEFAULT 0,
      pids INTEGER NOT NULL DEFAULT 0,
      env TEXT NOT NULL DEFAULT '{}',
      metadata TEXT NOT NULL DEFAULT '{}',
      timeout_at_ms INTEGER NOT NULL DEFAULT 0,
      on_timeout TEXT NOT NULL DEFAULT 'kill',
      auto_delete_after_s INTEGER NOT NULL DEFAULT 0,
      created_at_ms INTEGER NOT NULL,
      started_at_ms INTEGER NOT NULL DEFAULT 0,
      stopped_at_ms INTEGER NOT NULL DEFAULT 0,
      last_active_ms INTEGER NOT NULL DEFAULT 0,
      error TEXT NOT NULL DEFAULT '',
      init_pid INTEGER NOT NULL DEFAULT 0,
      init_start_time INTEGER NOT NULL DEFAULT 0,
      id_base INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE journal (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      sandbox_id TEXT NOT NULL,
      op TEXT NOT NULL,
      phase TEXT NOT NULL,
      detail TEXT NOT NULL DEFAULT '',
      at_ms INTEGER NOT NULL
    );
    CREATE INDEX journal_by_sandbox ON journal(sandbox_id, seq);
    )sql",
    // 2: the token that guards a sandbox's own API (E2B's envd access token).
    R"sql(
    ALTER TABLE sandboxes ADD COLUMN access_token TEXT NOT NULL DEFAULT '';
    )sql",
    // 3: networking. `address` is held while the sandbox has a network slot;
    // the index makes handing one address to two sandboxes impossible.
    R"sql(
    ALTER TABLE sandboxes ADD COLUMN network TEXT NOT NULL DEFAULT '';
    ALTER TABLE sandboxes ADD COLUMN address TEXT NOT NULL DEFAULT '';
    CREATE UNIQUE INDEX sandboxes_by_address ON sandboxes(address) WHERE address != '';
    )sql",
    // 4: TCP forwards from host ports, JSON (net::PortForward).
    R"sql(
    ALTER TABLE sandboxes ADD COLUMN forwards TEXT NOT NULL DEFAULT '';
    )sql",
    // 5: images. Layers live in each image's row (JSON): a layer folder is
    // kept while any image names its chain id. A sandbox names its image by id.
    R"sql(
    CREATE TABLE images (
      id TEXT PRIMARY KEY,
      manifest_digest TEXT NOT NULL,
      config TEXT NOT NULL,
      layers TEXT NOT NULL,
      size INTEGER NOT NULL DEFAULT 0,
      created_at_ms INTEGER NOT NULL,
      last_used_ms INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE image_refs (
      ref TEXT PRIMARY KEY,
      image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
    );
    CREATE INDEX image_refs_by_image ON image_refs(image_id);
    ALTER TABLE sandboxes ADD COLUMN image_id TEXT NOT NULL DEFAULT '';
    )sql",
    // 6: snapshots: a sandbox's writable layer kept as a read-only layer.
    // A sandbox names the snapshot it was created from.
    R"sql(
    CREATE TABLE snapshots (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL DEFAULT '',
      source_id TEXT NOT NULL,
      template TEXT NOT NULL,
      image_id TEXT NOT NULL DEFAULT '',
      parent TEXT NOT NULL DEFAULT '',
      size INTEGER NOT NULL DEFAULT 0,
      created_at_ms INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX snapshots_by_name ON snapshots(name) WHERE name != '';
    ALTER TABLE sandboxes ADD COLUMN snapshot_id TEXT NOT NULL DEFAULT '';
    )sql",
    // 7: templates built from steps. A snapshot may carry what sandboxes
    // made from it run with (config) and the key of the build step it
    // caches; a template names the snapshot its last build ended with.
    R"sql(
    ALTER TABLE snapshots ADD COLUMN config TEXT NOT NULL DEFAULT '';
    ALTER TABLE snapshots ADD COLUMN build_key TEXT NOT NULL DEFAULT '';
    CREATE INDEX snapshots_by_build_key ON snapshots(build_key) WHERE build_key != '';
    CREATE TABLE templates (
      name TEXT PRIMARY KEY,
      snapshot_id TEXT NOT NULL REFERENCES snapshots(id),
      build_id TEXT NOT NULL DEFAULT '',
      created_at_ms INTEGER NOT NULL
    );
    )sql",
    // 8: a sandbox's disk limit (bytes; 0: none), a project quota.
    R"sql(
    ALTER TABLE sandboxes ADD COLUMN disk_bytes INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 9: volumes, and the ones each sandbox mounts.
    R"sql(
    CREATE TABLE volumes (
      name TEXT PRIMARY KEY,
      disk_bytes INTEGER NOT NULL DEFAULT 0,
      created_at_ms INTEGER NOT NULL
    );
    ALTER TABLE sandboxes ADD COLUMN volumes TEXT NOT NULL DEFAULT '';
    )sql",
    // 10: idle sandboxes stop or pause.
    R"sql(
    ALTER TABLE sandboxes ADD COLUMN idle_timeout_s INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sandboxes ADD COLUMN on_idle TEXT NOT NULL DEFAULT 'stop';
    )sql",
    // 11: archived writable layers, and the files deleted sandboxes kept.
    R"sql(
    ALTER TABLE sandboxes ADD COLUMN archive_after_s INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sandboxes ADD COLUMN archived_at_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sandboxes ADD COLUMN archive_sha256 TEXT NOT NULL DEFAULT '';
    ALTER TABLE sandboxes ADD COLUMN archive_size INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sandboxes ADD COLUMN restore_ms INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE archives (
      id TEXT PRIMARY KEY,
      sandbox_id TEXT NOT NULL,
      sandbox_name TEXT NOT NULL,
      template TEXT NOT NULL,
      image_id TEXT NOT NULL,
      snapshot_id TEXT NOT NULL,
      path TEXT NOT NULL,
      size INTEGER NOT NULL,
      bytes INTEGER NOT NULL,
      sha256 TEXT NOT NULL,
      created_at_ms INTEGER NOT NULL
    );
    )sql",
    // 12: a token per volume, for its files' API (E2B's volume content API).
    R"sql(
    ALTER TABLE volumes ADD COLUMN token TEXT NOT NULL DEFAULT '';
    UPDATE volumes SET token = lower(hex(randomblob(16)));
    )sql",
    // 13: the CDI devices a sandbox holds.
    R"sql(
    ALTER TABLE sandboxes ADD COLUMN devices TEXT NOT NULL DEFAULT '';
    )sql",
};

const char* const kColumns =
    "id, name, template, state, memory_bytes, cpu_millicores, pids, env, metadata, "
    "timeout_at_ms, on_timeout, auto_delete_after_s, created_at_ms, started_at_ms, "
    "stopped_at_ms, last_active_ms, error, init_pid, init_start_time, id_base, access_token, network, address, "
    "forwards, image_id, snapshot_id, disk_bytes, volumes, idle_timeout_s, on_idle, archive_after_s, archived_at_ms, "
    "archive_sha256, archive_size, restore_ms, devices";

const char* const kArchiveColumns =
    "id, sandbox_id, sandbox_name, template, image_id, snapshot_id, path, size, bytes, sha256, created_at_ms";

// A prepared statement, handed out for one use at a time: Use() gives a
// handle that binds and steps it, and resets it (bindings cleared) when it
// goes. A statement left stepped would hold its read transaction open, and
// with it the WAL: no checkpoint could start the log over, and it would grow
// with every write after.
class Statement {
 public:
  class Active {
   public:
    explicit Active(sqlite3_stmt* stmt) : stmt_(stmt) {}
    ~Active() {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
    Active(const Active&) = delete;
    Active& operator=(const Active&) = delete;

    sqlite3_stmt* get() { return stmt_; }
    void Bind(int i, const std::string& v) {
      sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
    std::string Text(int col) {
      const unsigned char* t = sqlite3_column_text(stmt_, col);
      return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(stmt_, col)) : "";
    }
    int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }

   private:
    sqlite3_stmt* stmt_;
  };

  Statement(sqlite3* db, const std::string& sql) {
    rc_ = sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  Active Use() { return Active(stmt_); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::string MapToJson(const std::map<std::string, std::string>& m) { return nlohmann::json(m).dump(); }

std::map<std::string, std::string> JsonToMap(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  std::map<std::string, std::string> m;
  if (j.is_object())
    for (const auto& [k, v] : j.items())
      if (v.is_string()) m[k] = v.get<std::string>();
  return m;
}

class SqliteStore : public Store {
 public:
  SqliteStore(sqlite3* db, int64_t journal_keep)
      : db_(db),
        journal_keep_(std::max<int64_t>(journal_keep, 1)),
        trim_every_(std::max<int64_t>(journal_keep / 100, 1)) {}
  ~SqliteStore() override {
    for (auto* st : {&insert_, &update_, &remove_, &get_, &list_, &journal_, &read_journal_, &trim_journal_,
                     &put_image_, &put_ref_, &list_images_, &list_refs_, &remove_ref_, &remove_image_, &touch_image_,
                     &put_snapshot_, &list_snapshots_, &remove_snapshot_, &put_template_, &list_templates_,
                     &remove_template_, &put_volume_, &list_volumes_, &remove_volume_, &put_archive_, &list_archives_,
                     &remove_archive_})
      st->reset();  // statements are finalized before the connection closes
    sqlite3_close(db_);
  }

  Status Migrate() {
    PDK_TRY(Exec("PRAGMA journal_mode=WAL"));
    // NORMAL in WAL mode: a committed transaction survives a crash of
    // paddockd; only a power loss may drop the last ones.
    PDK_TRY(Exec("PRAGMA synchronous=NORMAL"));
    PDK_TRY(Exec("PRAGMA foreign_keys=ON"));
    sqlite3_busy_timeout(db_, 5000);
    int64_t version = 0;
    {
      Statement v(db_, std::string("PRAGMA user_version"));
      if (!v.ok()) return Error("read schema version");
      auto read = v.Use();
      if (sqlite3_step(read.get()) != SQLITE_ROW) return Error("read schema version");
      version = read.Int(0);
    }
    int64_t latest = static_cast<int64_t>(std::size(kMigrations));
    if (version > latest)
      return FailedPrecondition("the state database has schema version " + std::to_string(version) +
                                ", newer than this paddockd knows (" + std::to_string(latest) + ")");
    for (int64_t i = version; i < latest; ++i) {
      PDK_TRY(Exec("BEGIN IMMEDIATE"));
      Status s = Exec(kMigrations[i]);
      if (s.ok()) s = Exec("PRAGMA user_version=" + std::to_string(i + 1));
      if (!s.ok()) {
        (void)Exec("ROLLBACK");
        return s.Annotate("migrating schema to version " + std::to_string(i + 1));
      }
      PDK_TRY(Exec("COMMIT"));
    }
    return Status::Ok();
  }

  Status Prepare() {
    insert_ = std::make_unique<Statement>(
        db_, std::string("INSERT INTO sandboxes (") + kColumns +
                 ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32,?33,?34,?35,?36)");
    update_ = std::make_unique<Statement>(
        db_, "UPDATE sandboxes SET name=?2, template=?3, state=?4, memory_bytes=?5, "
             "cpu_millicores=?6, pids=?7, env=?8, metadata=?9, timeout_at_ms=?10, on_timeout=?11, "
             "auto_delete_after_s=?12, created_at_ms=?13, started_at_ms=?14, stopped_at_ms=?15, "
             "last_active_ms=?16, error=?17, init_pid=?18, init_start_time=?19, id_base=?20, "
             "access_token=?21, network=?22, address=?23, forwards=?24, image_id=?25, snapshot_id=?26, disk_bytes=?27, volumes=?28, idle_timeout_s=?29, on_idle=?30, "
             "archive_after_s=?31, archived_at_ms=?32, archive_sha256=?33, archive_size=?34, restore_ms=?35, devices=?36 "
             "WHERE id=?1");
    remove_ = std::make_unique<Statement>(db_, "DELETE FROM sandboxes WHERE id=?1");
    get_ = std::make_unique<Statement>(db_, std::string("SELECT ") + kColumns +
                                                " FROM sandboxes WHERE id=?1");
    list_ = std::make_unique<Statement>(db_, std::string("SELECT ") + kColumns +
                                                 " FROM sandboxes ORDER BY created_at_ms, id");
    journal_ = std::make_unique<Statement>(
        db_, "INSERT INTO journal (sandbox_id, op, phase, detail, at_ms) VALUES (?1,?2,?3,?4,?5)");
    read_journal_ = std::make_unique<Statement>(
        db_, "SELECT seq, sandbox_id, op, phase, detail, at_ms FROM journal "
             "WHERE ?1 = '' OR sandbox_id = ?1 ORDER BY seq");
    trim_journal_ = std::make_unique<Statement>(db_, "DELETE FROM journal WHERE seq <= ?1");
    put_image_ = std::make_unique<Statement>(
        db_, "INSERT INTO images (id, manifest_digest, config, layers, size, created_at_ms, last_used_ms) "
             "VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(id) DO UPDATE SET manifest_digest=?2, "
             "config=CASE WHEN ?3 = '' THEN config ELSE ?3 END, "
             "layers=?4, size=?5, last_used_ms=max(last_used_ms, ?7)");
    put_ref_ = std::make_unique<Statement>(db_, "INSERT OR REPLACE INTO image_refs (ref, image_id) VALUES (?1,?2)");
    list_images_ = std::make_unique<Statement>(
        db_, "SELECT id, manifest_digest, config, layers, size, created_at_ms, last_used_ms FROM images "
             "ORDER BY created_at_ms, id");
    list_refs_ = std::make_unique<Statement>(db_, "SELECT ref, image_id FROM image_refs ORDER BY ref");
    remove_ref_ = std::make_unique<Statement>(db_, "DELETE FROM image_refs WHERE ref=?1");
    remove_image_ = std::make_unique<Statement>(db_, "DELETE FROM images WHERE id=?1");
    touch_image_ = std::make_unique<Statement>(db_, "UPDATE images SET last_used_ms=?2 WHERE id=?1");
    put_snapshot_ = std::make_unique<Statement>(
        db_, "INSERT INTO snapshots (id, name, source_id, template, image_id, parent, size, created_at_ms, "
             "config, build_key) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    list_snapshots_ = std::make_unique<Statement>(
        db_, "SELECT id, name, source_id, template, image_id, parent, size, created_at_ms, config, build_key "
             "FROM snapshots ORDER BY created_at_ms, id");
    remove_snapshot_ = std::make_unique<Statement>(db_, "DELETE FROM snapshots WHERE id=?1");
    put_template_ = std::make_unique<Statement>(
        db_, "INSERT OR REPLACE INTO templates (name, snapshot_id, build_id, created_at_ms) VALUES (?1,?2,?3,?4)");
    list_templates_ = std::make_unique<Statement>(
        db_, "SELECT name, snapshot_id, build_id, created_at_ms FROM templates ORDER BY name");
    remove_template_ = std::make_unique<Statement>(db_, "DELETE FROM templates WHERE name=?1");
    put_volume_ = std::make_unique<Statement>(
        db_, "INSERT INTO volumes (name, disk_bytes, created_at_ms, token) VALUES (?1,?2,?3,?4)");
    list_volumes_ = std::make_unique<Statement>(db_, "SELECT name, disk_bytes, created_at_ms, token FROM volumes ORDER BY name");
    remove_volume_ = std::make_unique<Statement>(db_, "DELETE FROM volumes WHERE name=?1");
    put_archive_ = std::make_unique<Statement>(
        db_, std::string("INSERT INTO archives (") + kArchiveColumns + ") VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
    list_archives_ = std::make_unique<Statement>(
        db_, std::string("SELECT ") + kArchiveColumns + " FROM archives ORDER BY created_at_ms, id");
    remove_archive_ = std::make_unique<Statement>(db_, "DELETE FROM archives WHERE id=?1");
    for (Statement* st : {insert_.get(), update_.get(), remove_.get(), get_.get(), list_.get(),
                          journal_.get(), read_journal_.get(), trim_journal_.get(), put_image_.get(),
                          put_ref_.get(), list_images_.get(), list_refs_.get(), remove_ref_.get(), remove_image_.get(),
                          touch_image_.get(), put_snapshot_.get(), list_snapshots_.get(),
                          remove_snapshot_.get(), put_template_.get(), list_templates_.get(),
                          remove_template_.get(), put_volume_.get(), list_volumes_.get(), remove_volume_.get(),
                          put_archive_.get(), list_archives_.get(), remove_archive_.get()})
      if (!st->ok()) return Error("prepare statements");
    return Status::Ok();
  }

  Status Insert(const SandboxRecord& r, const JournalNote& note) override {
    std::lock_guard<std::mutex> lock(mu_);
    return InTransaction(note, r.id, [&]() -> Status {
      auto st = insert_->Use();
      BindRecord(st, r);
      int rc = sqlite3_step(st.get());
      if (rc == SQLITE_CONSTRAINT)
        return AlreadyExists("a sandbox with id '" + r.id + "' or name '" + r.name + "' exists");
      if (rc != SQLITE_DONE) return Error("insert sandbox " + r.id);
      return Status::Ok();
    });
  }

  Status Update(const SandboxRecord& r, const JournalNote& note) override {
    std::lock_guard<std::mutex> lock(mu_);
    return InTransaction(note, r.id, [&]() -> Status {
      auto st = update_->Use();
      BindRecord(st, r);
      if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("update sandbox " + r.id);
      if (sqlite3_changes(db_) == 0) return NotFound("no sandbox record '" + r.id + "'");
      return Status::Ok();
    });
  }

  Status Remove(const std::string& id, const JournalNote& note) override {
    std::lock_guard<std::mutex> lock(mu_);
    return InTransaction(note, id, [&]() -> Status {
      auto st = remove_->Use();
      st.Bind(1, id);
      if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("delete sandbox " + id);
      return Status::Ok();
    });
  }

  Result<SandboxRecord> Get(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = get_->Use();
    st.Bind(1, id);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) return NotFound("no sandbox record '" + id + "'");
    if (rc != SQLITE_ROW) return Error("read sandbox " + id);
    return ReadRecord(st);
  }

  Result<std::vector<SandboxRecord>> List() override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = list_->Use();
    std::vector<SandboxRecord> out;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) out.push_back(ReadRecord(st));
    if (rc != SQLITE_DONE) return Error("list sandboxes");
    return out;
  }

  Result<int64_t> Journal(const std::string& sandbox_id, const std::string& op,
                          const std::string& phase, const std::string& detail) override {
    std::lock_guard<std::mutex> lock(mu_);
    PDK_TRY(AppendJournal(sandbox_id, {op, phase, detail}));
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
  }

  Result<std::vector<JournalEntry>> ReadJournal(const std::string& sandbox_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = read_journal_->Use();
    st.Bind(1, sandbox_id);
    std::vector<JournalEntry> out;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
      out.push_back({st.Int(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4), st.Int(5)});
    if (rc != SQLITE_DONE) return Error("read journal");
    return out;
  }

  Status PutImage(const ImageRecord& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    PDK_TRY(Exec("BEGIN IMMEDIATE"));
    Status s = [&]() -> Status {
      auto st = put_image_->Use();
      st.Bind(1, r.id);
      st.Bind(2, r.manifest_digest);
      st.Bind(3, r.config);
      st.Bind(4, r.layers);
      st.Bind(5, r.size);
      st.Bind(6, r.created_at_ms);
      st.Bind(7, r.last_used_ms);
      if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("store image " + r.id);
      for (const auto& ref : r.refs) {
        auto rs = put_ref_->Use();
        rs.Bind(1, ref);
        rs.Bind(2, r.id);
        if (sqlite3_step(rs.get()) != SQLITE_DONE) return Error("store image ref " + ref);
      }
      return Status::Ok();
    }();
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Result<std::vector<ImageRecord>> ListImages() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ImageRecord> out;
    std::map<std::string, size_t> at;
    auto st = list_images_->Use();
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      ImageRecord r;
      r.id = st.Text(0);
      r.manifest_digest = st.Text(1);
      r.config = st.Text(2);
      r.layers = st.Text(3);
      r.size = st.Int(4);
      r.created_at_ms = st.Int(5);
      r.last_used_ms = st.Int(6);
      at[r.id] = out.size();
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return Error("list images");
    auto refs = list_refs_->Use();
    while ((rc = sqlite3_step(refs.get())) == SQLITE_ROW)
      if (auto it = at.find(refs.Text(1)); it != at.end()) out[it->second].refs.push_back(refs.Text(0));
    if (rc != SQLITE_DONE) return Error("list image refs");
    return out;
  }

  Status RemoveImageRef(const std::string& ref) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = remove_ref_->Use();
    st.Bind(1, ref);
    if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("remove image ref " + ref);
    return Status::Ok();
  }

  Status RemoveImage(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = remove_image_->Use();
    st.Bind(1, id);  // refs go with it (ON DELETE CASCADE)
    if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("remove image " + id);
    return Status::Ok();
  }

  Status TouchImage(const std::string& id, int64_t at_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = touch_image_->Use();
    st.Bind(1, id);
    st.Bind(2, at_ms);
    if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("touch image " + id);
    return Status::Ok();
  }

  Status PutSnapshot(const SnapshotRecord& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = put_snapshot_->Use();
    st.Bind(1, r.id);
    st.Bind(2, r.name);
    st.Bind(3, r.source_id);
    st.Bind(4, r.template_name);
    st.Bind(5, r.image_id);
    st.Bind(6, r.parent);
    st.Bind(7, r.size);
    st.Bind(8, r.created_at_ms);
    st.Bind(9, r.config);
    st.Bind(10, r.build_key);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_CONSTRAINT)
      return AlreadyExists("a snapshot with id '" + r.id + "' or name '" + r.name + "' exists");
    if (rc != SQLITE_DONE) return Error("store snapshot " + r.id);
    return Status::Ok();
  }

  Result<std::vector<SnapshotRecord>> ListSnapshots() override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = list_snapshots_->Use();
    std::vector<SnapshotRecord> out;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
      out.push_back({st.Text(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4), st.Text(5), st.Int(6), st.Int(7),
                     st.Text(8), st.Text(9)});
    if (rc != SQLITE_DONE) return Error("list snapshots");
    return out;
  }

  Status RemoveSnapshot(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = remove_snapshot_->Use();
    st.Bind(1, id);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_CONSTRAINT) return FailedPrecondition("snapshot " + id + " is a template's");
    if (rc != SQLITE_DONE) return Error("remove snapshot " + id);
    return Status::Ok();
  }

  Status PutTemplate(const TemplateRecord& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = put_template_->Use();
    st.Bind(1, r.name);
    st.Bind(2, r.snapshot_id);
    st.Bind(3, r.build_id);
    st.Bind(4, r.created_at_ms);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_CONSTRAINT) return NotFound("snapshot " + r.snapshot_id + " does not exist");
    if (rc != SQLITE_DONE) return Error("store template " + r.name);
    return Status::Ok();
  }

  Result<std::vector<TemplateRecord>> ListTemplates() override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = list_templates_->Use();
    std::vector<TemplateRecord> out;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
      out.push_back({st.Text(0), st.Text(1), st.Text(2), st.Int(3)});
    if (rc != SQLITE_DONE) return Error("list templates");
    return out;
  }

  Status PutVolume(const VolumeRecord& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = put_volume_->Use();
    st.Bind(1, r.name);
    st.Bind(2, r.disk_bytes);
    st.Bind(3, r.created_at_ms);
    st.Bind(4, r.token);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_CONSTRAINT) return AlreadyExists("a volume named '" + r.name + "' already exists");
    if (rc != SQLITE_DONE) return Error("store volume " + r.name);
    return Status::Ok();
  }

  Result<std::vector<VolumeRecord>> ListVolumes() override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = list_volumes_->Use();
    std::vector<VolumeRecord> out;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) out.push_back({st.Text(0), st.Int(1), st.Int(2), st.Text(3)});
    if (rc != SQLITE_DONE) return Error("list volumes");
    return out;
  }

  Status RemoveVolume(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = remove_volume_->Use();
    st.Bind(1, name);
    if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("remove volume " + name);
    return Status::Ok();
  }

  Status PutArchive(const ArchiveRecord& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = put_archive_->Use();
    int i = 0;
    for (const std::string* v : {&r.id, &r.sandbox_id, &r.sandbox_name, &r.template_name, &r.image_id,
                                 &r.snapshot_id, &r.path})
      st.Bind(++i, *v);
    st.Bind(8, r.size);
    st.Bind(9, r.bytes);
    st.Bind(10, r.sha256);
    st.Bind(11, r.created_at_ms);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_CONSTRAINT) return AlreadyExists("archive " + r.id + " already exists");
    if (rc != SQLITE_DONE) return Error("store archive " + r.id);
    return Status::Ok();
  }

  Result<std::vector<ArchiveRecord>> ListArchives() override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = list_archives_->Use();
    std::vector<ArchiveRecord> out;
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
      out.push_back({st.Text(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4), st.Text(5), st.Text(6), st.Int(7),
                     st.Int(8), st.Text(9), st.Int(10)});
    if (rc != SQLITE_DONE) return Error("list archives");
    return out;
  }

  Status RemoveArchive(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = remove_archive_->Use();
    st.Bind(1, id);
    if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("remove archive " + id);
    return Status::Ok();
  }

  Status RemoveTemplate(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto st = remove_template_->Use();
    st.Bind(1, name);
    if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("remove template " + name);
    return Status::Ok();
  }

 private:
  Status AppendJournal(const std::string& sandbox_id, const JournalNote& note) {
    auto st = journal_->Use();
    st.Bind(1, sandbox_id);
    st.Bind(2, note.op);
    st.Bind(3, note.phase);
    st.Bind(4, note.detail);
    st.Bind(5, WallClockMillis());
    if (sqlite3_step(st.get()) != SQLITE_DONE) return Error("append to journal");
    // seq only grows: the newest journal_keep_ entries are the last numbers.
    if (++appends_since_trim_ < trim_every_) return Status::Ok();
    appends_since_trim_ = 0;
    auto trim = trim_journal_->Use();
    trim.Bind(1, static_cast<int64_t>(sqlite3_last_insert_rowid(db_)) - journal_keep_);
    if (sqlite3_step(trim.get()) != SQLITE_DONE) return Error("trim the journal");
    return Status::Ok();
  }

  // Runs `change` and, if `note` names an op, its journal entry, atomically.
  template <typename Fn>
  Status InTransaction(const JournalNote& note, const std::string& id, Fn change) {
    if (note.op.empty()) return change();
    PDK_TRY(Exec("BEGIN IMMEDIATE"));
    Status s = change();
    if (s.ok()) s = AppendJournal(id, note);
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s;
    }
    return Exec("COMMIT");
  }

  Status Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return Internal("sqlite: " + msg);
    }
    return Status::Ok();
  }
  Status Error(const std::string& what) {
    return Internal("sqlite: " + what + ": " + sqlite3_errmsg(db_));
  }
  static void BindRecord(Statement::Active& st, const SandboxRecord& r) {
    st.Bind(1, r.id);
    st.Bind(2, r.name);
    st.Bind(3, r.template_name);
    st.Bind(4, r.state);
    st.Bind(5, r.memory_bytes);
    st.Bind(6, r.cpu_millicores);
    st.Bind(7, r.pids);
    st.Bind(8, MapToJson(r.env));
    st.Bind(9, MapToJson(r.metadata));
    st.Bind(10, r.timeout_at_ms);
    st.Bind(11, r.on_timeout);
    st.Bind(12, r.auto_delete_after_s);
    st.Bind(13, r.created_at_ms);
    st.Bind(14, r.started_at_ms);
    st.Bind(15, r.stopped_at_ms);
    st.Bind(16, r.last_active_ms);
    st.Bind(17, r.error);
    st.Bind(18, r.init_pid);
    st.Bind(19, static_cast<int64_t>(r.init_start_time));
    st.Bind(20, static_cast<int64_t>(r.id_base));
    st.Bind(21, r.access_token);
    st.Bind(22, r.network);
    st.Bind(23, r.address);
    st.Bind(24, r.forwards);
    st.Bind(25, r.image_id);
    st.Bind(26, r.snapshot_id);
    st.Bind(27, r.disk_bytes);
    st.Bind(28, r.volumes);
    st.Bind(29, r.idle_timeout_s);
    st.Bind(30, r.on_idle);
    st.Bind(31, r.archive_after_s);
    st.Bind(32, r.archived_at_ms);
    st.Bind(33, r.archive_sha256);
    st.Bind(34, r.archive_size);
    st.Bind(35, r.restore_ms);
    st.Bind(36, r.devices);
  }
  static SandboxRecord ReadRecord(Statement::Active& st) {
    SandboxRecord r;
    r.id = st.Text(0);
    r.name = st.Text(1);
    r.template_name = st.Text(2);
    r.state = st.Text(3);
    r.memory_bytes = st.Int(4);
    r.cpu_millicores = st.Int(5);
    r.pids = st.Int(6);
    r.env = JsonToMap(st.Text(7));
    r.metadata = JsonToMap(st.Text(8));
    r.timeout_at_ms = st.Int(9);
    r.on_timeout = st.Text(10);
    r.auto_delete_after_s = st.Int(11);
    r.created_at_ms = st.Int(12);
    r.started_at_ms = st.Int(13);
    r.stopped_at_ms = st.Int(14);
    r.last_active_ms = st.Int(15);
    r.error = st.Text(16);
    r.init_pid = st.Int(17);
    r.init_start_time = static_cast<uint64_t>(st.Int(18));
    r.id_base = static_cast<uint32_t>(st.Int(19));
    r.access_token = st.Text(20);
    r.network = st.Text(21);
    r.address = st.Text(22);
    r.forwards = st.Text(23);
    r.image_id = st.Text(24);
    r.snapshot_id = st.Text(25);
    r.disk_bytes = st.Int(26);
    r.volumes = st.Text(27);
    r.idle_timeout_s = st.Int(28);
    r.on_idle = st.Text(29);
    r.archive_after_s = st.Int(30);
    r.archived_at_ms = st.Int(31);
    r.archive_sha256 = st.Text(32);
    r.archive_size = st.Int(33);
    r.restore_ms = st.Int(34);
    r.devices = st.Text(35);
    return r;
  }

  std::mutex mu_;  // one connection, one statement at a time
  sqlite3* db_;
  const int64_t journal_keep_, trim_every_;
  int64_t appends_since_trim_ = 0;
  std::unique_ptr<Statement> insert_, update_, remove_, get_, list_, journal_, read_journal_, trim_journal_;
  std::unique_ptr<Statement> put_image_, put_ref_, list_images_, list_refs_, remove_ref_, remove_image_, touch_image_;
  std::unique_ptr<Statement> put_snapshot_, list_snapshots_, remove_snapshot_;
  std::unique_ptr<Statement> put_template_, list_templates_, remove_template_;
  std::unique_ptr<Statement> put_volume_, list_volumes_, remove_volume_;
  std::unique_ptr<Statement> put_archive_, list_archives_, remove_archive_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path, int64_t journal_keep) {
  // The database holds every sandbox's access token: root's alone. SQLite
  // gives its -wal and -shm files the database's mode; ones left by an older
  // paddockd are narrowed too.
  {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd || ::fchmod(fd.get(), 0600) != 0) return Status::Errno("open state database " + path);
  }
  for (const char* side : {"-wal", "-shm"})
    if (::chmod((path + side).c_str(), 0600) != 0 && errno != ENOENT)
      return Status::Errno("chmod " + path + side);
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Internal("open state database " + path + ": " + msg);
  }
  auto store = std::make_unique<SqliteStore>(db, journal_keep);
  PDK_TRY(store->Migrate());
  PDK_TRY(store->Prepare());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace paddock
