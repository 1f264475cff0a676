// Status: the result of an operation that can fail, carried across layers
// instead of exceptions (LevelDB style). Cheap when OK (no allocation).
#pragma once

#include <memory>
#include <string>
#include <utility>

namespace lampyr {

class Status {
 public:
  Status() = default;  // OK
  static Status OK() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return msg_ == nullptr; }
  // Empty for OK.
  const std::string& message() const {
    static const std::string kEmpty;
    return msg_ ? *msg_ : kEmpty;
  }
  std::string ToString() const { return ok() ? "OK" : message(); }

 private:
  explicit Status(std::string m) : msg_(std::make_shared<std::string>(std::move(m))) {}
  std::shared_ptr<const std::string> msg_;
};

// Base for owners that must not be copied (sockets, loops, libraries).
class NonCopyable {
 public:
  NonCopyable(const NonCopyable&) = delete;
  NonCopyable& operator=(const NonCopyable&) = delete;

 protected:
  NonCopyable() = default;
  ~NonCopyable() = default;
};

}  // namespace lampyr
