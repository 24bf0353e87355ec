// MultipartReader: parts of any size split out of a body read piece by
// piece, with what is malformed named.
#include "api/request_body.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace paddock::api {
namespace {

// A source over `body` that hands out at most `step` bytes per call (and,
// with step 0, a random 1..4096), counting what it gave.
struct Source {
  std::string body;
  size_t step = 0;
  size_t given = 0;
  std::mt19937 rng{7};
  MultipartReader::Source Fn() {
    return [this](char* buf, size_t cap) -> Result<size_t> {
      size_t most = step ? step : std::uniform_int_distribution<size_t>(1, 4096)(rng);
      size_t n = std::min({cap, most, body.size() - given});
      std::memcpy(buf, body.data() + given, n);
      given += n;
      return n;
    };
  }
};

struct Part {
  std::string head, data;
};

// Every part, each read `cap` bytes at a time.
Result<std::vector<Part>> ReadAll(MultipartReader& reader, size_t cap) {
  std::vector<Part> parts;
  std::string buf(cap, '\0');
  for (;;) {
    PDK_ASSIGN_OR_RETURN(std::optional<std::string> head, reader.NextPart());
    if (!head) return parts;
    Part p{*head, ""};
    for (;;) {
      PDK_ASSIGN_OR_RETURN(size_t n, reader.Read(buf.data(), cap));
      if (n == 0) break;
      p.data.append(buf.data(), n);
    }
    parts.push_back(std::move(p));
  }
}

std::string Body(const std::string& boundary, const std::vector<std::pair<std::string, std::string>>& files) {
  std::string body = "a preamble to skip\r\n";
  for (const auto& [name, data] : files)
    body += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name +
            "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + "\r\n";
  return body + "--" + boundary + "--\r\nan epilogue to ignore";
}

TEST(MultipartTest, PartsComeOutWholeWhateverTheReadSizes) {
  const std::string b = "XyZ-42";
  // Data that looks like the delimiter without being it.
  std::string tricky = "\r\n--XyZ-4\r\n--XyZ-43 is not it--XyZ-42\r\n-";
  std::string big(300000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7919 % 251);
  std::vector<std::pair<std::string, std::string>> files = {
      {"a.txt", "hello"}, {"empty", ""}, {"tricky.bin", tricky}, {"big.bin", big}};
  for (size_t step : {size_t{1}, size_t{3}, size_t{0}, size_t{1} << 20}) {
    for (size_t cap : {size_t{1}, size_t{5}, size_t{65536}, size_t{1} << 20}) {
      if (step == 1 && cap > 5) continue;  // slow and adds nothing
      Source src{Body(b, files), step};
      MultipartReader reader(b, src.Fn());
      auto parts = ReadAll(reader, cap);
      ASSERT_TRUE(parts.ok()) << parts.status().ToString() << " step " << step << " cap " << cap;
      ASSERT_EQ(parts->size(), files.size());
      for (size_t i = 0; i < files.size(); ++i) {
        EXPECT_EQ(MultipartReader::FileNameOf((*parts)[i].head), files[i].first);
        EXPECT_TRUE((*parts)[i].data == files[i].second) << files[i].first << " step " << step << " cap " << cap;
      }
    }
  }
}

// A part of 8 MiB is read without the reader pulling much more of the body
// than it hands out: it never holds the part.
TEST(MultipartTest, AReaderHoldsAPieceNotThePart) {
  const std::string b = "bnd";
  Source src{Body(b, {{"huge", std::string(8 << 20, 'x')}}), 0};
  MultipartReader reader(b, src.Fn());
  ASSERT_TRUE(reader.NextPart().ok());
  std::vector<char> buf(64 << 10);
  size_t read = 0;
  for (;;) {
    auto n = reader.Read(buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    read += *n;
    ASSERT_LT(src.given - read, size_t{256} << 10);
  }
  EXPECT_EQ(read, size_t{8} << 20);
  auto end = reader.NextPart();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
}

TEST(MultipartTest, NextPartSkipsWhatWasNotRead) {
  const std::string b = "b";
  Source src{Body(b, {{"one", std::string(200000, '1')}, {"two", "2"}}), 0};
  MultipartReader reader(b, src.Fn());
  ASSERT_TRUE(reader.NextPart().ok());
  char c;
  ASSERT_EQ(*reader.Read(&c, 1), 1u);
  auto second = reader.NextPart();
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ(MultipartReader::FileNameOf(**second), "two");
}

TEST(MultipartTest, APartWithoutHeadersIsAPartToo) {
  Source src{"--b\r\n\r\ndata\r\n--b--", 0};
  MultipartReader reader("b", src.Fn());
  auto parts = ReadAll(reader, 16);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].head, "");
  EXPECT_EQ((*parts)[0].data, "data");
}

TEST(MultipartTest, MalformedBodiesAreNamed) {
  auto error_of = [](std::string body) {
    Source src{std::move(body), 0};
    MultipartReader reader("b", src.Fn());
    auto parts = ReadAll(reader, 4096);
    EXPECT_FALSE(parts.ok());
    EXPECT_EQ(parts.status().code(), StatusCode::kInvalidArgument);
    return parts.status().message();
  };
  EXPECT_NE(error_of("no delimiter at all").find("no delimiter"), std::string::npos);
  EXPECT_NE(error_of("--b\r\n\r\nthe data runs to the end").find("no closing delimiter"), std::string::npos);
  EXPECT_NE(error_of("--b\r\nContent-Disposition: form-data").find("cut off"), std::string::npos);
  EXPECT_NE(error_of("--b\r\nX: " + std::string(20000, 'h') + "\r\n\r\nd\r\n--b--").find("over 16384"),
            std::string::npos);
}

TEST(MultipartTest, BoundariesAreReadFromTheContentType) {
  EXPECT_EQ(*MultipartReader::BoundaryOf("multipart/form-data; boundary=abc"), "abc");
  EXPECT_EQ(*MultipartReader::BoundaryOf("multipart/form-data; BOUNDARY=abc; charset=x"), "abc");
  EXPECT_EQ(*MultipartReader::BoundaryOf("multipart/form-data; boundary=\"a b;c\""), "a b;c");
  EXPECT_FALSE(MultipartReader::BoundaryOf("multipart/form-data").ok());
  EXPECT_FALSE(MultipartReader::BoundaryOf("multipart/form-data; boundary=").ok());
  EXPECT_FALSE(MultipartReader::BoundaryOf("multipart/form-data; boundary=\"open").ok());
  EXPECT_FALSE(MultipartReader::BoundaryOf("multipart/form-data; boundary=" + std::string(71, 'x')).ok());
}

}  // namespace
}  // namespace paddock::api
