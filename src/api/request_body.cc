#include "api/request_body.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace paddock::api {

namespace {
constexpr size_t kPieceBytes = 64 << 10;
}  // namespace

BodyReader::BodyReader(const Request& req, const StreamWriter& out) : memory_(req.body()) {
  from_file_ = !out.body_file().empty();
  if (from_file_) {
    memory_ = {};
    fd_.reset(::open(out.body_file().c_str(), O_RDONLY | O_CLOEXEC));
  }
}

Result<size_t> BodyReader::Read(char* buf, size_t cap) {
  if (!from_file_) {
    size_t n = std::min(cap, memory_.size());
    std::memcpy(buf, memory_.data(), n);
    memory_.remove_prefix(n);
    return n;
  }
  if (!fd_) return Internal("the request body's spool file is gone");
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, cap);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return Status::Errno("read request body");
  }
}

Result<std::string> MultipartReader::BoundaryOf(std::string_view content_type) {
  std::string lower(content_type);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t at = lower.find("boundary=");
  if (at == std::string::npos) return InvalidArgument("multipart upload without a boundary");
  std::string_view value = content_type.substr(at + 9);
  std::string boundary;
  if (!value.empty() && value.front() == '"') {
    size_t close = value.find('"', 1);
    if (close == std::string_view::npos) return InvalidArgument("multipart boundary with an unclosed quote");
    boundary = value.substr(1, close - 1);
  } else {
    boundary = value.substr(0, value.find_first_of("; \t"));
  }
  if (boundary.empty() || boundary.size() > 70)
    return InvalidArgument("a multipart boundary must be 1 to 70 characters");
  return boundary;
}

std::string MultipartReader::FileNameOf(std::string_view part_head) {
  size_t at = part_head.find("filename=\"");
  if (at == std::string_view::npos) return "";
  at += 10;
  return std::string(part_head.substr(at, part_head.find('"', at) - at));
}

// The body is read as if it began with CRLF, so that the first delimiter
// (which may open the body, with no preamble) reads like every later one.
MultipartReader::MultipartReader(std::string boundary, Source source)
    : delimiter_("\r\n--" + boundary), source_(std::move(source)), buf_("\r\n"), end_(buf_.size()) {}

Status MultipartReader::Fill(size_t want) {
  if (pos_ >= kPieceBytes) {  // drop what was consumed before growing
    buf_.erase(0, pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  while (Held() < want && !ended_) {
    // Grown (and so zero-filled) by a piece when short of room, not on
    // every read: a source that gives a byte at a time costs a byte each.
    if (buf_.size() - end_ < want - Held()) buf_.resize(end_ + std::max(kPieceBytes, want - Held()));
    PDK_ASSIGN_OR_RETURN(size_t n, source_(buf_.data() + end_, buf_.size() - end_));
    end_ += n;
    ended_ = n == 0;
  }
  return Status::Ok();
}

size_t MultipartReader::FindDelimiter(size_t within) const {
  return Unread().substr(0, within).find(delimiter_);
}

Result<std::optional<std::string>> MultipartReader::NextPart() {
  if (where_ == Where::kDone) return std::optional<std::string>();
  if (where_ == Where::kInPart) {
    char skip[4096];
    for (;;) {
      PDK_ASSIGN_OR_RETURN(size_t n, Read(skip, sizeof skip));
      if (n == 0) break;
    }
  }
  while (where_ == Where::kPreamble) {
    PDK_TRY(Fill(delimiter_.size() + kPieceBytes));
    size_t at = FindDelimiter();
    if (at != std::string::npos) {
      pos_ += at + delimiter_.size();
      where_ = Where::kAfterDelimiter;
    } else if (ended_) {
      return InvalidArgument("the multipart body holds no delimiter for its boundary");
    } else {
      pos_ = end_ - (delimiter_.size() - 1);  // keep what may begin one
    }
  }
  // After a delimiter: "--" closes the body; else the rest of the
  // delimiter's line and the part's header lines end with an empty line.
  PDK_TRY(Fill(2));
  if (Unread().substr(0, 2) == "--") {
    where_ = Where::kDone;
    return std::optional<std::string>();
  }
  PDK_TRY(Fill(kMaxHeadBytes + 4));
  size_t end = Unread().substr(0, kMaxHeadBytes + 4).find("\r\n\r\n");
  if (end == std::string::npos)
    return InvalidArgument(ended_ && Held() < kMaxHeadBytes
                               ? "a multipart part's header is cut off"
                               : "a multipart part's header is over " + std::to_string(kMaxHeadBytes) +
                                     " bytes");
  std::string head(Unread().substr(0, end));
  pos_ += end + 4;
  where_ = Where::kInPart;
  return std::optional<std::string>(std::move(head));
}

Result<size_t> MultipartReader::Read(char* buf, size_t cap) {
  if (where_ != Where::kInPart || cap == 0) return size_t{0};
  cap = std::min(cap, kPieceBytes);
  PDK_TRY(Fill(delimiter_.size() + cap));
  // Only a delimiter that begins among the first `cap` bytes matters, and
  // one that does ends within `window`: the search costs the read, not
  // what is held (a reader of small pieces would scan 64 KiB for each).
  size_t window = cap + delimiter_.size() - 1;
  size_t at = FindDelimiter(window);
  size_t n;
  if (at == 0) {
    pos_ += delimiter_.size();
    where_ = Where::kAfterDelimiter;
    return size_t{0};
  } else if (at != std::string::npos) {
    n = at;  // below cap
  } else if (Held() >= window) {
    n = cap;  // Fill held cap + delimiter bytes unless the body ended
  } else {
    return InvalidArgument("the multipart body ends inside a part (no closing delimiter)");
  }
  std::memcpy(buf, buf_.data() + pos_, n);
  pos_ += n;
  return n;
}

}  // namespace paddock::api
