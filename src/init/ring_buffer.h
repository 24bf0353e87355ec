// OutputRing: the bounded history of one process's output, addressed by byte
// offset since the process started, so a client that reconnects asks for
// "everything from offset N" and gets what is still held.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

namespace paddock::init {

enum class Stream : uint8_t { kStdout, kStderr, kPty };
const char* StreamName(Stream s);

class OutputRing {
 public:
  explicit OutputRing(size_t capacity_bytes) : capacity_(capacity_bytes) {}

  // Appends output; drops the oldest chunks beyond capacity. Returns the offset
  // at which `data` starts.
  uint64_t Append(Stream stream, std::string_view data);
  // Calls `fn(stream, offset, bytes)` for every held byte at or after `from`,
  // in order. Bytes before first_offset() are gone.
  void ReadFrom(uint64_t from,
                const std::function<void(Stream, uint64_t, std::string_view)>& fn) const;
  uint64_t first_offset() const { return end_ - held_; }
  uint64_t end_offset() const { return end_; }

 private:
  struct Chunk {
    Stream stream;
    uint64_t offset;
    std::string data;
  };
  size_t capacity_;
  size_t held_ = 0;
  uint64_t end_ = 0;
  std::deque<Chunk> chunks_;
};

}  // namespace paddock::init
