// Tar archives of local folders for `paddock cp`, built as a module that
// only cp loads (dlopen): libarchive, and the ICU, XML and compression
// libraries it brings, would otherwise cost every command ~8 ms of start-up
// (12.7 -> ~4 ms for `paddock --help` here). The module sits beside the
// paddock binary as libpaddock-cli-tar.so.
#pragma once

#include <string>

extern "C" {

// A pax tar of folder `dir`, its entries relative to it, into *out.
// False, with *error set, if the folder cannot be read.
bool paddock_tar_dir(const char* dir, std::string* out, std::string* error);
// A tar of `src` (a file or a folder, relative to folder `context`) whose
// entries are named relative to `context`, made the same from the same
// files: sorted, times and owners zeroed, modes kept. Its SHA-256 (hex) in
// *sha256. For template builds' copy steps: the hash is the cache key.
bool paddock_tar_paths(const char* context, const char* src, std::string* out, std::string* sha256,
                       std::string* error);
// Extracts `tar` under folder `dir` (made if missing), refusing entries
// that climb out of it. False, with *error set, on the first failure.
bool paddock_untar(const std::string* tar, const char* dir, std::string* error);

}  // extern "C"
