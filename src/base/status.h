// Errors as values for the whole project: every syscall or I/O failure comes
// back as a Status carrying a code, the failed operation's name and errno.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace paddock {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // the caller's input is wrong
  kNotFound,            // the named thing does not exist
  kAlreadyExists,       // the name is taken
  kFailedPrecondition,  // valid request, wrong state (e.g. resume a running sandbox)
  kPermissionDenied,
  kResourceExhausted,   // a limit was hit (host full, fd table, disk)
  kUnavailable,         // the peer is gone or not yet there (agent socket)
  kUnimplemented,       // this build or kernel cannot do it
  kDeadlineExceeded,    // a wait ran out of time
  kUnauthenticated,     // missing or wrong credentials
  kDataLoss,            // what a peer sent is corrupt (a blob that fails its digest)
  kInternal,            // a real fault
};

// Stable string form used in logs and APIs ("not_found", ...).
const char* StatusCodeName(StatusCode code);
// The reverse; kInternal for a name it does not know.
StatusCode StatusCodeFromName(std::string_view name);

class Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  // A failed syscall: the code is derived from errno, the message names `op`.
  static Status Errno(std::string_view op, int err = errno);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  int sys_errno() const { return errno_; }
  const std::string& message() const { return message_; }
  // "not_found: open /x: No such file or directory"
  std::string ToString() const;
  // Returns a copy whose message is prefixed with `context: `.
  Status Annotate(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  int errno_ = 0;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}          // NOLINT: must not be ok
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace paddock

#define PDK_CONCAT_INNER(a, b) a##b
#define PDK_CONCAT(a, b) PDK_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` is not ok.
#define PDK_TRY(expr)                                   \
  do {                                                  \
    ::paddock::Status pdk_status_ = (expr);             \
    if (!pdk_status_.ok()) return pdk_status_;          \
  } while (0)

// `lhs = value of expr`, or returns its Status.
#define PDK_ASSIGN_OR_RETURN(lhs, expr) \
  PDK_ASSIGN_OR_RETURN_IMPL(PDK_CONCAT(pdk_result_, __LINE__), lhs, expr)
#define PDK_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
