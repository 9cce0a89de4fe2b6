//===- ExpertWeights.h - the quantizable weights of a moeq.moe --*- C++ -*-===//
//
// What the bit-assignment passes (uniform, sensitivity, allocation) share:
// which operands of a moeq.moe are expert weights, where each one's
// Hessian lives in a calibration statistics file, and how a weight operand
// is wrapped in a moeq.quantize.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_EXPERTWEIGHTS_H
#define MOEQ_PASSES_EXPERTWEIGHTS_H

#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Quant/Quantizer.h"

#include <string>

namespace mlir {
class ModuleOp;
} // namespace mlir

namespace mlir::moeq {

/// One weight operand of a moeq.moe.
struct WeightSlot {
  OpOperand *operand;
  bool shared;
  int64_t expert;   ///< routed expert index (-1 for the shared expert)
  StringRef linear; ///< "gate", "up" or "down"
};

/// Routed-expert weights in gate, up, down order (expert by expert within
/// each), then, with `withShared`, the shared expert's.
SmallVector<WeightSlot> getWeightSlots(MoEOp moe, bool withShared);

/// The layer index of a moeq.moe (function attribute `moeq.layer`), or -1.
int64_t getLayerIndex(MoEOp moe);

/// Statistics tensor name (docs/calibration-stats.md) of a weight's
/// Hessian, without the `layers.<L>.` prefix: plain (GPTQ) or
/// affinity-weighted (AGQ, and the routed loss of the sensitivity pass).
std::string getHessianName(const WeightSlot &slot, bool sharedGated, bool weighted);

/// `layers.<layer>.<name>` in archive scope "stats".
ExternalParamAttr getStatsRef(MLIRContext *context, int64_t layer, StringRef name);

/// A weight for diagnostics: its parameter key when it has one.
std::string describeWeight(Value weight);

/// How the weights are quantized (the options every assignment pass takes).
struct QuantizeSettings {
  QuantMethod method = QuantMethod::RTN;
  bool hasStats = false;
  bool actOrder = false;
  bool mseClip = false;
  bool salienceClip = false;
};


/// The group size a weight with `inputDim` columns is stored with when
/// `groupSize` is asked for: `groupSize` when it divides `inputDim` (or is
/// 0, per channel), else the largest of groupSize / 2, / 4, ... down to 32
/// (or to groupSize / 2 when that is smaller; multiples of 8) that divides
/// `inputDim` (gpt-oss's 2880 at 128: 64), else 0 (one scale per output
/// channel: 200 at 128).
int64_t fitGroupSize(int64_t groupSize, int64_t inputDim);

/// `scheme` with its group size fitted to `inputDim` (fitGroupSize): every
/// expert weight and low-rank factor, whatever its width, is stored.
SchemeAttr fitSchemeToInputs(SchemeAttr scheme, int64_t inputDim);

/// Warns, once per input dimension, about the weights of `module` whose
/// group size was fitted because a `requested` scheme's does not divide
/// their input dimension, naming the group size chosen.
void reportFittedGroupSizes(ModuleOp module, ArrayRef<SchemeAttr> requested);

/// Wraps the float weight of `slot` in a moeq.quantize to `scheme` (a
/// no-op for an operand already quantized), with its Hessian when the
/// method uses one; errors name the weight. For a moeq.delta_weight the
/// base and factors are quantized instead, each once, factors whose rank
/// holds no whole group per channel, with the Hessians moeq-delta-decompress
/// recorded.
LogicalResult quantizeSlot(const WeightSlot &slot, SchemeAttr scheme,
                           const QuantizeSettings &settings, int64_t layer, bool sharedGated);

/// D^2-MoE: wraps operand `index` of `delta` (0 base, 1 a, 2 b) in a
/// moeq.quantize to `scheme` (per channel when its groups do not divide the
/// factor's width) with the Hessian recorded on the parameter
/// (kHessianAttrName) for GPTQ/AGQ; a no-op when already quantized (a
/// shared base or b).
LogicalResult quantizeDeltaOperand(DeltaWeightOp delta, unsigned index, SchemeAttr scheme,
                                   const QuantizeSettings &settings);

/// Checks the method/stats/act-order options of an assignment
/// pass and registers the statistics archive; emits errors on `module`.
/// `statsWithRTN`: statistics are also used for something other than the
/// quantizer (the sensitivity loss), so RTN may have them.
FailureOr<QuantizeSettings> parseQuantizeSettings(ModuleOp module, QuantMethod method,
                                                  StringRef statsPath, bool actOrder,
                                                  bool mseClip, bool salienceClip,
                                                  bool statsWithRTN);

/// Whether SliM-LLM's group widths apply to a weight of `inputDim` columns
/// stored with `scheme`: weight-only, asymmetric, integer (level tables
/// have one table size per weight), in at least two groups, of 2-7 bits (a
/// width must move both ways).
bool canMixGroupWidths(SchemeAttr scheme, int64_t inputDim);

/// The quantizer's view of a scheme, or of a packed weight's storage (with
/// its group bits).
quant::Scheme toStorageScheme(SchemeAttr scheme);
quant::Scheme toStorageScheme(PackedWeightType type);

/// Parses a comma-separated list of scheme names (SchemeAttr mangled
/// form, e.g. "w4a16g128,w8a16pc"); emits errors on `module` for malformed,
/// duplicate or not yet supported schemes.
FailureOr<SmallVector<SchemeAttr>> parseSchemeList(ModuleOp module, StringRef list);

} // namespace mlir::moeq

#endif // MOEQ_PASSES_EXPERTWEIGHTS_H
