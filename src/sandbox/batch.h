// Batch creation: many sandboxes of one spec in one call, as rollout farms
// ask for them (ROCK's SandboxGroup is the peer).
#pragma once

#include <cstddef>
#include <vector>

#include "base/status.h"
#include "sandbox/manager.h"

namespace paddock {

struct BatchOptions {
  size_t parallel = 8;  // creates in flight at once
  int attempts = 3;     // per sandbox, for failures that may pass
};

// The most sandboxes one batch asks for.
constexpr size_t kMaxBatch = 1000;

// Whether a failed create may succeed if tried again: the host full while
// deleted sandboxes are still torn down, a resource that was briefly short.
bool MayPass(const Status& s);

// Creates `count` sandboxes like `spec`; with spec.name set, the i-th is
// named "<name>-<i>". Failures that MayPass are retried (50 ms, then
// 100 ms, ... apart); the result for each sandbox is in order.
std::vector<Result<SandboxInfo>> CreateBatch(SandboxManager& manager, const SandboxSpec& spec, size_t count,
                                             const BatchOptions& opts = {});

}  // namespace paddock
