// archive_bench: what archiving a stopped sandbox's files and restoring them
// at its start cost, through paddockd's API on the unix socket.
//
//   archive_bench [--sizes MB,MB] [--runs N]
//
// For each size (100 and 1024 MB), a host sandbox writes that much to its
// writable layer: half random bytes (incompressible), half text (a log
// that compresses well). It is stopped and synced; then, N (3) times,
// POST .../archive (the layer to a zstd tar, synced, the folder removed)
// and POST .../start (checksum, unpack, sync, boot; the sandbox's
// restore_ms is the restore alone), then stop again. Last, a DELETE
// ?keep_data=1 of it running. Prints medians, MB/s of the layer's bytes
// and the archive's size. Asserts nothing.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>

#include "base/fs.h"
#include "cli/api_client.h"
#include "daemon.h"
#include "samples.h"

using namespace paddock;
using cli::json;

namespace {

double Now() { return MonotonicNanos() / 1e6; }

json Exec(const std::string& sock, const std::string& id, const std::string& cmd) {
  json r = bench::MustCall(sock, "POST", "/v1/sandboxes/" + id + "/exec", {{"command", cmd}, {"timeout", 600}});
  if (r.value("exit_code", -1) != 0) {
    std::fprintf(stderr, "%s failed: %s\n", cmd.c_str(), r.dump().c_str());
    std::exit(1);
  }
  return r;
}

// A sandbox whose layer holds `mb` MB: half random, half text.
std::string Filled(const std::string& sock, int mb) {
  std::string id = bench::MustCall(sock, "POST", "/v1/sandboxes", {{"template", "host"}, {"memory", "2g"}})["id"];
  int half = mb / 2;
  // The log: one 20,000-line block (~1 MB) repeated, a bounded number of times.
  Exec(sock, id, "mkdir -p /work && head -c " + std::to_string(half) + "M /dev/urandom > /work/random.bin && "
                 "seq -f '%g GET /api/items 200 12ms user=agent' 1 20000 > /tmp/block && "
                 "for i in $(seq " + std::to_string(half + 1) + "); do cat /tmp/block; done > /work/app.log && "
                 "truncate -s " + std::to_string(half) + "M /work/app.log && rm /tmp/block");
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {100, 1024};
  int runs = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::stringstream in(argv[++i]);
      for (std::string s; std::getline(in, s, ',');) sizes.push_back(std::atoi(s.c_str()));
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: archive_bench [--sizes MB,MB] [--runs N]\n");
      return 2;
    }
  }
  bench::OwnPaddockd d =
      bench::StartOwnPaddockd("pdk-archivebench", {PADDOCKD_PATH, "--init", PADDOCK_INIT_PATH});
  const std::string& sock = d.sock;
  for (int mb : sizes) {
    std::string id = Filled(sock, mb);
    bench::MustCall(sock, "POST", "/v1/sandboxes/" + id + "/stop");
    ::sync();
    bench::Samples archive, restore, start;
    int64_t size = 0;
    for (int r = 0; r < runs; ++r) {
      double t0 = Now();
      json a = bench::MustCall(sock, "POST", "/v1/sandboxes/" + id + "/archive");
      archive.ms.push_back(Now() - t0);
      size = a.value("archive_size", int64_t{0});
      t0 = Now();
      json s = bench::MustCall(sock, "POST", "/v1/sandboxes/" + id + "/start");
      start.ms.push_back(Now() - t0);
      restore.ms.push_back(static_cast<double>(s.value("restore_ms", int64_t{0})));
      bench::MustCall(sock, "POST", "/v1/sandboxes/" + id + "/stop");
      ::sync();
    }
    // Last, kept on delete while running (once: it deletes the sandbox).
    bench::MustCall(sock, "POST", "/v1/sandboxes/" + id + "/start");
    ::sync();
    double t0 = Now();
    json kept = bench::MustCall(sock, "DELETE", "/v1/sandboxes/" + id + "?keep_data=1");
    double keep_ms = Now() - t0;
    bench::MustCall(sock, "DELETE", "/v1/archives/" + kept["id"].get<std::string>());
    auto rate = [mb](double ms) { return ms > 0 ? mb / (ms / 1000.0) : 0.0; };
    std::printf("%5d MB layer (half random, half log), archive %.1f MB (%.0f%%), median of %d:\n", mb, size / 1e6,
                100.0 * size / (mb * 1048576.0), runs);
    std::printf("  archive (POST .../archive)        %8.0f ms  %6.0f MB/s\n", archive.P(0.5), rate(archive.P(0.5)));
    std::printf("  restore (its restore_ms)          %8.0f ms  %6.0f MB/s\n", restore.P(0.5), rate(restore.P(0.5)));
    std::printf("  start with restore (POST .../start) %6.0f ms\n", start.P(0.5));
    std::printf("  rm --keep-data, running (once)    %8.0f ms  %6.0f MB/s\n", keep_ms, rate(keep_ms));
  }
  bench::StopOwnPaddockd(d);
  return 0;
}
