#include "init/ring_buffer.h"

namespace paddock::init {

const char* StreamName(Stream s) {
  switch (s) {
    case Stream::kStdout: return "stdout";
    case Stream::kStderr: return "stderr";
    case Stream::kPty: return "pty";
  }
  return "stdout";
}

uint64_t OutputRing::Append(Stream stream, std::string_view data) {
  uint64_t start = end_;
  if (data.empty()) return start;
  // Merge small writes to the same stream so many tiny chunks do not pile up.
  if (!chunks_.empty() && chunks_.back().stream == stream && chunks_.back().data.size() < 4096)
    chunks_.back().data.append(data);
  else
    chunks_.push_back(Chunk{stream, start, std::string(data)});
  end_ += data.size();
  held_ += data.size();
  while (held_ > capacity_ && !chunks_.empty()) {
    Chunk& front = chunks_.front();
    size_t excess = held_ - capacity_;
    if (front.data.size() <= excess) {
      held_ -= front.data.size();
      chunks_.pop_front();
    } else {
      front.data.erase(0, excess);
      front.offset += excess;
      held_ -= excess;
    }
  }
  return start;
}

void OutputRing::ReadFrom(
    uint64_t from, const std::function<void(Stream, uint64_t, std::string_view)>& fn) const {
  for (const Chunk& c : chunks_) {
    uint64_t chunk_end = c.offset + c.data.size();
    if (chunk_end <= from) continue;
    size_t skip = from > c.offset ? static_cast<size_t>(from - c.offset) : 0;
    fn(c.stream, c.offset + skip, std::string_view(c.data).substr(skip));
  }
}

}  // namespace paddock::init
