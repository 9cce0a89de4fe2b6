//===- OutputError.h - measured layer-output error of one expert -*- C++ -*-===//
//
// MxMoE's sensitivity: quantize one linear of one expert, run the expert on
// calibration inputs, and measure how far the layer output moves. Only that
// expert's term of the combine sum changes, so the layer-output error is
// sum_t c_t^2 ||y_t' - y_t||^2 over the tokens routed to it, with c_t the
// routing weight and y = down(act(gate x) * up x), here in float64.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_QUANT_OUTPUTERROR_H
#define MOEQ_QUANT_OUTPUTERROR_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace mlir::moeq::quant {

/// The expert's act(gate, up): silu(g) u, gelu(g) u, or gpt-oss's clamped
/// SwiGLU min(g, L) sigmoid(alpha min(g, L)) (clamp(u, -L, L) + 1).
enum class GatedActivation { SiLU, GeLU, ClampedSwiGLU };

/// What an expert has beyond its three weights (gpt-oss): the clamped
/// SwiGLU's constants and a bias per linear (empty: none).
struct ExpertExtras {
  double swigluAlpha = 1.702, swigluLimit = 7.0;
  std::vector<float> gateBias, upBias, downBias;
};

class ExpertOutputError {
public:
  enum class Linear { Gate, Up, Down };

  /// `samples`: rows x hidden block inputs routed to the expert, `weights`
  /// their routing weights (rows with weight 0 are padding and ignored);
  /// gate and up are inter x hidden, down hidden x inter, row-major.
  static llvm::Expected<ExpertOutputError>
  create(llvm::ArrayRef<double> samples, llvm::ArrayRef<double> weights, int64_t hidden,
         llvm::ArrayRef<float> gate, llvm::ArrayRef<float> up, llvm::ArrayRef<float> down,
         int64_t intermediate, GatedActivation activation, ExpertExtras extras = {});

  /// sum_t c_t^2 ||y_t - y_t(ref)||^2 with `linear` replaced by
  /// `replacement` (same shape), all other weights as given; with
  /// `actBits` < 16 the replaced linear's inputs are quantized per token
  /// too (fakeQuantizeActivations), as a weight-activation kernel does.
  double loss(Linear linear, llvm::ArrayRef<float> replacement, unsigned actBits = 16) const;

  /// loss() with only the rows `rows` (ascending) of `linear` replaced by
  /// `replacementRows` (rows.size() x the linear's input width, row-major)
  /// and every other row as the reference: the error of quantizing those
  /// rows alone, in about rows.size() / (the linear's rows) of loss()'s
  /// time. A quantizer that treats rows independently (GPTQ, RTN) gives
  /// them the codes it gives them in the whole matrix. With `actBits` < 16
  /// the inputs of the replaced rows are quantized, the other rows stay
  /// the reference (their share of the activation error is not counted).
  double lossOfRows(Linear linear, llvm::ArrayRef<int64_t> rows,
                    llvm::ArrayRef<float> replacementRows, unsigned actBits = 16) const;

  /// Sample rows with a non-zero routing weight.
  int64_t rows() const { return Rows; }

private:
  ExpertOutputError() = default;
  /// out = a (rows x k) * w^T (w: n x k, float) + bias (n, or empty),
  /// float64.
  static void multiplyTransposed(const std::vector<double> &a, int64_t rows, int64_t k,
                                 llvm::ArrayRef<float> w, int64_t n, std::vector<double> &out,
                                 llvm::ArrayRef<float> bias = {});
  double activate(double gate, double up) const;
  std::vector<double> activate(const std::vector<double> &gate,
                               const std::vector<double> &up) const;
  double distance(const std::vector<double> &y) const;

  int64_t Rows = 0, Hidden = 0, Intermediate = 0;
  GatedActivation Activation = GatedActivation::SiLU;
  ExpertExtras Extras;
  std::vector<double> X, C;          ///< rows x hidden, rows
  std::vector<float> Down;           ///< hidden x intermediate
  std::vector<double> G, U, A, Y;    ///< reference gate/up outputs, act, expert output
};

} // namespace mlir::moeq::quant

#endif // MOEQ_QUANT_OUTPUTERROR_H
