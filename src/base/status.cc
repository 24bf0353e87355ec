#include "base/status.h"

#include <cstring>

namespace paddock {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kResourceExhausted: return "resource_exhausted";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kUnimplemented: return "unimplemented";
    case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kDataLoss: return "data_loss";
    case StatusCode::kInternal: return "internal";
  }
  return "internal";
}

StatusCode StatusCodeFromName(std::string_view name) {
  for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c)
    if (name == StatusCodeName(static_cast<StatusCode>(c))) return static_cast<StatusCode>(c);
  return StatusCode::kInternal;
}

static StatusCode CodeForErrno(int err) {
  switch (err) {
    case ENOENT: case ESRCH: return StatusCode::kNotFound;
    case EEXIST: return StatusCode::kAlreadyExists;
    case EINVAL: case ENAMETOOLONG: case ELOOP: return StatusCode::kInvalidArgument;
    case EPERM: case EACCES: case EROFS: return StatusCode::kPermissionDenied;
    case ENOTDIR: case EISDIR: case ENOTEMPTY: case EBUSY: case EXDEV:
      return StatusCode::kFailedPrecondition;
    case ENOSPC: case EMFILE: case ENFILE: case ENOMEM: case EAGAIN: case EDQUOT:
      return StatusCode::kResourceExhausted;
    case ENOSYS: case EOPNOTSUPP: return StatusCode::kUnimplemented;
    case ETIMEDOUT: return StatusCode::kDeadlineExceeded;
    case ECONNREFUSED: case ECONNRESET: case EPIPE: case ENOTCONN:
      return StatusCode::kUnavailable;
    default: return StatusCode::kInternal;
  }
}

Status Status::Errno(std::string_view op, int err) {
  Status s(CodeForErrno(err), std::string(op) + ": " + std::strerror(err));
  s.errno_ = err;
  return s;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::Annotate(std::string_view context) const {
  if (ok()) return *this;
  Status s = *this;
  s.message_ = std::string(context) + ": " + message_;
  return s;
}

}  // namespace paddock
