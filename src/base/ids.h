// Random identifiers.
#pragma once

#include <string>

namespace paddock {

// `bytes` random bytes from getrandom(2), hex encoded (2*bytes characters).
std::string RandomHex(size_t bytes);
// A new sandbox id: 20 lowercase characters [a-z0-9], starting with a letter
// (valid as a DNS label and as a path component).
std::string NewSandboxId();

}  // namespace paddock
