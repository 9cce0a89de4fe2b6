//===- Status.h - error results of the runtime ------------------*- C++ -*-===//
//
// The runtime reports every failure as a message (never an exception, never
// an abort): the C API hands it to moeq_last_error(). A message names the
// place (file, layer, step, tensor) where there is one.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_STATUS_H
#define MOEQ_RUNTIME_STATUS_H

#include <string>
#include <utility>

namespace moeq::runtime {

class [[nodiscard]] Status {
public:
  /// Success.
  Status() = default;
  static Status error(std::string message) {
    Status status;
    status.failed = true;
    status.text = std::move(message);
    return status;
  }

  bool ok() const { return !failed; }
  const std::string &message() const { return text; }

  /// The same failure with `prefix` in front ("layer 0: " + message).
  Status prefixed(const std::string &prefix) const {
    return ok() ? *this : error(prefix + text);
  }

private:
  bool failed = false;
  std::string text;
};

} // namespace moeq::runtime

/// Returns from the enclosing function when `expr` (a Status) failed.
#define MOEQ_RETURN_IF_ERROR(expr)                                                          \
  do {                                                                                       \
    ::moeq::runtime::Status moeqStatus_ = (expr);                                            \
    if (!moeqStatus_.ok())                                                                   \
      return moeqStatus_;                                                                    \
  } while (false)

#endif // MOEQ_RUNTIME_STATUS_H
