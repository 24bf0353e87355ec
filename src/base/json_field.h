// Reading fields of JSON that a peer wrote: a registry, a sandbox's agent,
// a client. json::value() throws when a field is there with another type;
// these treat a field of the wrong type as absent, so a hostile document can
// give a wrong answer but never an exception.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>

namespace paddock {

// True when `j` holds a value that get<T>() converts without throwing and
// without changing it: no float into an integer, no integer out of T's range.
template <class T>
bool HoldsType(const nlohmann::json& j) {
  if constexpr (std::is_same_v<T, nlohmann::json>)
    return true;
  else if constexpr (std::is_same_v<T, std::string>)
    return j.is_string();
  else if constexpr (std::is_same_v<T, bool>)
    return j.is_boolean();
  else if constexpr (std::is_integral_v<T>) {
    if (j.is_number_unsigned()) return std::in_range<T>(j.get<uint64_t>());
    return j.is_number_integer() && std::in_range<T>(j.get<int64_t>());
  } else if constexpr (std::is_floating_point_v<T>)
    return j.is_number();
  else
    static_assert(sizeof(T) == 0, "HoldsType: unsupported type");
}

// j[key] when `j` is an object holding `key` with a value of type T,
// otherwise `fallback`.
template <class T>
T Field(const nlohmann::json& j, const char* key, T fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !HoldsType<T>(*it)) return fallback;
  return it->template get<T>();
}

inline std::string Field(const nlohmann::json& j, const char* key, const char* fallback) {
  return Field<std::string>(j, key, fallback);
}

}  // namespace paddock
