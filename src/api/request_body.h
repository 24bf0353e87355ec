// Reading a request body piece by piece, whether the server kept it in
// memory or spooled it to a file (ServerOptions::body_to_file), and splitting
// a multipart/form-data body into its parts as it is read. Either way the
// caller holds one piece at a time, never the whole body.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "api/http_server.h"
#include "base/fd.h"
#include "base/status.h"

namespace paddock::api {

// A request's body, from the file the server spooled it to or from memory.
class BodyReader {
 public:
  BodyReader(const Request& req, const StreamWriter& out);
  // An open descriptor when the body is in a file (else -1).
  int fd() const { return fd_.get(); }
  bool from_file() const { return from_file_; }
  // The body when it is in memory (empty when it is in a file).
  std::string_view memory() const { return memory_; }
  // Fills up to `cap` bytes at `buf`; 0 at the end of the body.
  Result<size_t> Read(char* buf, size_t cap);

 private:
  std::string_view memory_;
  UniqueFd fd_;
  bool from_file_ = false;
};

// Splits a multipart/form-data body (RFC 7578, RFC 2046 section 5.1) into
// parts while reading it from `source`, holding at most about one piece plus
// a part's header in memory, so a part of any size streams through. Not
// thread-safe.
class MultipartReader {
 public:
  // Fills up to `cap` bytes at `buf` and returns how many, 0 at the end.
  using Source = std::function<Result<size_t>(char* buf, size_t cap)>;

  // The boundary named in a Content-Type header, or kInvalidArgument when
  // there is none or it is not 1 to 70 characters.
  static Result<std::string> BoundaryOf(std::string_view content_type);
  // The `filename` parameter of a part's Content-Disposition, if any.
  static std::string FileNameOf(std::string_view part_head);

  MultipartReader(std::string boundary, Source source);
  // Moves to the next part, skipping the preamble or what is left of the
  // current part. Returns the part's header lines (unparsed, at most
  // kMaxHeadBytes), nullopt after the closing delimiter, or
  // kInvalidArgument for a body that is not well formed.
  Result<std::optional<std::string>> NextPart();
  // Fills up to `cap` bytes at `buf` with the current part's data; 0 at its
  // end. A body that ends before the part's delimiter is kInvalidArgument.
  Result<size_t> Read(char* buf, size_t cap);

  static constexpr size_t kMaxHeadBytes = 16 << 10;

 private:
  enum class Where { kPreamble, kInPart, kAfterDelimiter, kDone };
  // Reads until `want` unconsumed bytes are held or the source ends.
  Status Fill(size_t want);
  size_t Held() const { return end_ - pos_; }
  std::string_view Unread() const { return std::string_view(buf_.data() + pos_, Held()); }
  // Where the next delimiter starts among the first `within` held bytes
  // (a delimiter must lie whole among them), or npos.
  size_t FindDelimiter(size_t within = std::string::npos) const;

  std::string delimiter_;  // CRLF "--" boundary
  Source source_;
  std::string buf_;  // read from the source up to end_, room after it
  size_t end_;
  size_t pos_ = 0;  // bytes of buf_ already consumed
  bool ended_ = false;
  Where where_ = Where::kPreamble;
};

}  // namespace paddock::api
