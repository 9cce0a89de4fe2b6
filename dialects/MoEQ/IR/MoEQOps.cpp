//===- MoEQOps.cpp - MoEQ operations: verifiers ---------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMTypes.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::moeq;

#define GET_OP_CLASSES
#include "moeq/Dialect/MoEQ/IR/MoEQOps.cpp.inc"

/// Two static dimensions conflict; dynamic ones are compatible with anything.
static bool dimsConflict(int64_t a, int64_t b) {
  return !ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b;
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  llvm::interleave(
      shape, os,
      [&](int64_t d) {
        if (ShapedType::isDynamic(d))
          os << "?";
        else
          os << d;
      },
      "x");
  return s;
}

/// Checks that every weight in `weights` is `rows x cols`.
static LogicalResult verifyWeightShapes(Operation *op, StringRef role,
                                        ValueRange weights, int64_t rows,
                                        int64_t cols) {
  for (auto [i, w] : llvm::enumerate(weights)) {
    ArrayRef<int64_t> shape = getWeightShape(w.getType());
    if (dimsConflict(shape[0], rows) || dimsConflict(shape[1], cols))
      return op->emitOpError() << role << " weight #" << i << " has shape "
                               << shapeString(shape) << ", expected "
                               << shapeString({rows, cols});
  }
  return success();
}

/// Checks the routing attributes shared by moeq.moe and moeq.router.
/// `bias` (when given) is a vector of `size` entries.
static LogicalResult verifyBiasSize(Operation *op, StringRef what, Value bias, int64_t size,
                                    StringRef sizeName) {
  if (!bias)
    return success();
  int64_t biasSize = cast<RankedTensorType>(bias.getType()).getDimSize(0);
  if (dimsConflict(biasSize, size))
    return op->emitOpError() << what << " has " << biasSize << " entries but " << sizeName
                             << " is " << size;
  return success();
}

static LogicalResult verifyRouting(Operation *op, int64_t numExperts, Value scoreBias,
                                   Value logitBias, int64_t nGroup, int64_t topkGroup,
                                   ScoringFunc scoring, int64_t topK,
                                   double jitterEps) {
  if (failed(verifyBiasSize(op, "the router bias", logitBias, numExperts,
                            "the number of experts")))
    return failure();
  if (scoring == ScoringFunc::SparseMixer && (topK != 2 || nGroup != 1))
    return op->emitOpError() << "sparsemixer routing is defined for top_k = 2 "
                                "without expert groups";
  if (jitterEps < 0)
    return op->emitOpError() << "jitter_eps must be non-negative";
  if (scoreBias) {
    int64_t biasSize = cast<RankedTensorType>(scoreBias.getType()).getDimSize(0);
    if (dimsConflict(biasSize, numExperts))
      return op->emitOpError() << "score_bias has " << biasSize
                               << " entries but there are " << numExperts << " experts";
  }
  if (nGroup < 1 || numExperts % nGroup != 0)
    return op->emitOpError() << "n_group = " << nGroup << " must divide the "
                             << numExperts << " experts";
  if (topkGroup < 1 || topkGroup > nGroup)
    return op->emitOpError() << "topk_group = " << topkGroup
                             << " must be in [1, n_group = " << nGroup << "]";
  return success();
}

//===----------------------------------------------------------------------===//
// ParamOp
//===----------------------------------------------------------------------===//

LogicalResult ParamOp::verify() {
  if (auto tensor = dyn_cast<RankedTensorType>(getType()))
    if (!tensor.hasStaticShape())
      return emitOpError() << "parameter tensor must have a static shape";
  if (getSourceAttr() && !isa<PackedWeightType>(getType()))
    return emitOpError() << "only a packed weight names the tensor it was quantized from "
                            "('source')";
  return success();
}

//===----------------------------------------------------------------------===//
// MoEOp
//===----------------------------------------------------------------------===//

int64_t MoEOp::getNumExperts() const {
  return cast<RankedTensorType>((*this)->getOperand(1).getType()).getDimSize(0);
}
int64_t MoEOp::getHiddenSize() { return getInput().getType().getDimSize(1); }
int64_t MoEOp::getIntermediateSize() {
  return getWeightShape(getGate().front().getType())[0];
}

LogicalResult MoEOp::verify() {
  RankedTensorType inputType = getInput().getType();
  int64_t hidden = inputType.getDimSize(1);
  if (ShapedType::isDynamic(hidden))
    return emitOpError() << "hidden dimension of the input must be static";
  if (getResult().getType() != inputType)
    return emitOpError() << "result type " << getResult().getType()
                         << " must equal the input type " << inputType;
  ArrayRef<int64_t> routerShape = getRouter().getType().getShape();
  int64_t numExperts = routerShape[0];
  if (dimsConflict(routerShape[1], hidden))
    return emitOpError() << "router weight is " << shapeString(routerShape)
                         << " but the hidden size is " << hidden;
  for (auto [role, group] : {std::pair<StringRef, ValueRange>{"gate", getGate()},
                             {"up", getUp()},
                             {"down", getDown()}}) {
    if (static_cast<int64_t>(group.size()) != numExperts)
      return emitOpError() << "has " << group.size() << " " << role
                           << " weights but the router scores " << numExperts
                           << " experts";
  }
  // (top_k is a positive i64 attribute: signed comparisons throughout.)
  int64_t topK = static_cast<int64_t>(getTopK());
  if (topK > numExperts)
    return emitOpError() << "top_k = " << topK << " exceeds the " << numExperts
                         << " experts";
  int64_t inter = getWeightShape(getGate().front().getType())[0];
  if (failed(verifyWeightShapes(*this, "gate", getGate(), inter, hidden)) ||
      failed(verifyWeightShapes(*this, "up", getUp(), inter, hidden)) ||
      failed(verifyWeightShapes(*this, "down", getDown(), hidden, inter)))
    return failure();

  bool anyShared = getSharedGate() || getSharedUp() || getSharedDown();
  bool allShared = getSharedGate() && getSharedUp() && getSharedDown();
  if (anyShared && !allShared)
    return emitOpError() << "shared expert needs gate, up and down weights";
  if (allShared) {
    int64_t sharedInter = getWeightShape(getSharedGate().getType())[0];
    if (failed(verifyWeightShapes(*this, "shared gate", getSharedGate(),
                                  sharedInter, hidden)) ||
        failed(verifyWeightShapes(*this, "shared up", getSharedUp(),
                                  sharedInter, hidden)) ||
        failed(verifyWeightShapes(*this, "shared down", getSharedDown(),
                                  hidden, sharedInter)))
      return failure();
  }
  if (Value gate = getSharedExpertGate()) {
    if (!allShared)
      return emitOpError() << "shared_expert_gate without a shared expert";
    if (failed(verifyWeightShapes(*this, "shared_expert_gate", gate, 1, hidden)))
      return failure();
  }
  for (auto [role, biases, size] :
       {std::tuple<StringRef, ValueRange, int64_t>{"gate", getGateBias(), inter},
        {"up", getUpBias(), inter},
        {"down", getDownBias(), hidden}}) {
    if (!biases.empty() && static_cast<int64_t>(biases.size()) != numExperts)
      return emitOpError() << "has " << biases.size() << " " << role
                           << " biases for " << numExperts << " experts";
    for (Value bias : biases)
      if (failed(verifyBiasSize(*this, (role + " bias").str(), bias, size,
                                role == "down" ? "the hidden size" : "the intermediate size")))
        return failure();
  }
  if (getSwigluLimit().convertToDouble() <= 0)
    return emitOpError() << "swiglu_limit must be positive";
  return verifyRouting(*this, numExperts, getScoreBias(), getRouterBias(), getNGroup(),
                       getTopkGroup(), getScoring(), getTopK(),
                       getJitterEps().convertToDouble());
}

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::verify() {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> w = getWeight().getType().getShape();
  if (dimsConflict(in[1], w[1]))
    return emitOpError() << "input " << shapeString(in)
                         << " does not match router weight " << shapeString(w);
  int64_t numExperts = w[0];
  int64_t topK = static_cast<int64_t>(getTopK()); // a positive i64 attribute
  if (!ShapedType::isDynamic(numExperts) && topK > numExperts)
    return emitOpError() << "top_k = " << topK << " exceeds the " << numExperts
                         << " experts";
  for (Value result : {getIndices(), getWeights()}) {
    ArrayRef<int64_t> shape = cast<RankedTensorType>(result.getType()).getShape();
    if (dimsConflict(shape[0], in[0]) || dimsConflict(shape[1], topK))
      return emitOpError() << "result " << shapeString(shape)
                           << " must be tokens x top_k = " << shapeString({in[0], topK});
  }
  return verifyRouting(*this, numExperts, getScoreBias(), getLogitBias(), getNGroup(),
                       getTopkGroup(), getScoring(), getTopK(),
                       getJitterEps().convertToDouble());
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

static int64_t mulDims(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) ? ShapedType::kDynamic
                                                              : a * b;
}

LogicalResult DispatchOp::verify() {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> idx = getIndices().getType().getShape();
  if (dimsConflict(in[0], idx[0]))
    return emitOpError() << "input has " << in[0] << " tokens but indices has "
                         << idx[0];
  int64_t rows = mulDims(idx[0], idx[1]);
  ArrayRef<int64_t> sorted = getSorted().getType().getShape();
  if (dimsConflict(sorted[0], rows) || dimsConflict(sorted[1], in[1]))
    return emitOpError() << "sorted result " << shapeString(sorted)
                         << " must be (tokens*top_k) x hidden = "
                         << shapeString({rows, in[1]});
  if (getSorted().getType().getElementType() != getInput().getType().getElementType())
    return emitOpError() << "sorted rows must keep the input element type";
  if (dimsConflict(getPositions().getType().getDimSize(0), rows))
    return emitOpError() << "positions must have tokens*top_k entries";
  if (dimsConflict(getOffsets().getType().getDimSize(0), getNumExperts() + 1))
    return emitOpError() << "offsets must have num_experts + 1 = "
                         << getNumExperts() + 1 << " entries";
  if (Value scales = getScales()) {
    ArrayRef<int64_t> shape = cast<RankedTensorType>(scales.getType()).getShape();
    if (dimsConflict(shape[0], idx[0]) || dimsConflict(shape[1], idx[1]))
      return emitOpError() << "scales " << shapeString(shape)
                           << " must have the shape of indices " << shapeString(idx);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult GroupedMatmulOp::verify() {
  if (getWeights().empty())
    return emitOpError() << "needs at least one group weight";
  int64_t numGroups = getWeights().size();
  if (dimsConflict(getOffsets().getType().getDimSize(0), numGroups + 1))
    return emitOpError() << "offsets must have " << numGroups + 1
                         << " entries for " << numGroups << " groups";
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> first = getWeightShape(getWeights().front().getType());
  if (failed(verifyWeightShapes(*this, "group", getWeights(), first[0], in[1])))
    return failure();
  ArrayRef<int64_t> out = getResult().getType().getShape();
  if (dimsConflict(out[0], in[0]) || dimsConflict(out[1], first[0]))
    return emitOpError() << "result " << shapeString(out) << " must be "
                         << shapeString({in[0], first[0]});
  if (!getBiases().empty() && static_cast<int64_t>(getBiases().size()) != numGroups)
    return emitOpError() << "has " << getBiases().size() << " biases for " << numGroups
                         << " groups";
  for (Value bias : getBiases())
    if (failed(verifyBiasSize(*this, "a group bias", bias, first[0], "the output size")))
      return failure();
  if (auto kernels = getKernels())
    if (static_cast<int64_t>(kernels->size()) != numGroups)
      return emitOpError() << "names " << kernels->size() << " kernels for "
                           << numGroups << " groups";
  if (auto tiles = getTiles())
    if (static_cast<int64_t>(tiles->size()) != numGroups)
      return emitOpError() << "has " << tiles->size() << " tile configurations for "
                           << numGroups << " groups";
  return success();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::verify() {
  ArrayRef<int64_t> rows = getExpertOut().getType().getShape();
  ArrayRef<int64_t> weights = getWeights().getType().getShape();
  int64_t slots = mulDims(weights[0], weights[1]);
  if (dimsConflict(rows[0], slots))
    return emitOpError() << "expert output has " << rows[0]
                         << " rows but the routing weights have " << slots
                         << " slots";
  if (dimsConflict(getPositions().getType().getDimSize(0), rows[0]))
    return emitOpError() << "positions must have one entry per expert-output row";
  ArrayRef<int64_t> out = getResult().getType().getShape();
  if (dimsConflict(out[0], weights[0]) || dimsConflict(out[1], rows[1]))
    return emitOpError() << "result " << shapeString(out) << " must be tokens x hidden = "
                         << shapeString({weights[0], rows[1]});
  if (Value shared = getShared()) {
    ArrayRef<int64_t> shape = cast<RankedTensorType>(shared.getType()).getShape();
    if (dimsConflict(shape[0], weights[0]) || dimsConflict(shape[1], rows[1]))
      return emitOpError() << "shared expert output " << shapeString(shape)
                           << " must be tokens x hidden = "
                           << shapeString({weights[0], rows[1]});
  }
  if (Value gate = getSharedGate()) {
    if (!getShared())
      return emitOpError() << "shared_gate without a shared expert output";
    ArrayRef<int64_t> shape = cast<RankedTensorType>(gate.getType()).getShape();
    if (dimsConflict(shape[0], weights[0]) || shape[1] != 1)
      return emitOpError() << "shared_gate " << shapeString(shape)
                           << " must be tokens x 1";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> w = getWeightShape(getWeight().getType());
  bool wider = getLeadingInputs() && !ShapedType::isDynamic(in[1]) && in[1] > w[1];
  if (dimsConflict(in[1], w[1]) && !wider)
    return emitOpError() << "input " << shapeString(in) << " does not match weight "
                         << shapeString(w)
                         << (getLeadingInputs() ? " (leading_inputs: at least its columns)" : "");
  auto packed = dyn_cast<PackedWeightType>(getWeight().getType());
  if (wider && packed && packed.getScheme().quantizesActivations())
    return emitOpError() << "leading_inputs needs a weight-only scheme (the activation "
                            "scale would cover the unread columns)";
  ArrayRef<int64_t> out = getResult().getType().getShape();
  if (dimsConflict(out[0], in[0]) || dimsConflict(out[1], w[0]))
    return emitOpError() << "result " << shapeString(out) << " must be "
                         << shapeString({in[0], w[0]});
  return success();
}

//===----------------------------------------------------------------------===//
// DeltaWeightOp
//===----------------------------------------------------------------------===//

LogicalResult DeltaWeightOp::verify() {
  ArrayRef<int64_t> out = getResult().getType().getShape();
  ArrayRef<int64_t> base = getWeightShape(getBase().getType());
  ArrayRef<int64_t> a = getWeightShape(getA().getType());
  ArrayRef<int64_t> b = getWeightShape(getB().getType());
  if (ShapedType::isDynamicShape(out))
    return emitOpError() << "result must have a static shape";
  if (a[0] != out[0] || b[1] != out[1] || a[1] != b[0])
    return emitOpError() << "low-rank factors a: " << shapeString(a) << " and b: "
                         << shapeString(b) << " do not form a " << shapeString(out)
                         << " matrix";
  bool rowsPruned = base[0] < out[0], colsPruned = base[1] < out[1];
  if (base[0] > out[0] || base[1] > out[1] || (rowsPruned && colsPruned))
    return emitOpError() << "base " << shapeString(base) << " must match the result "
                         << shapeString(out) << " or keep its leading rows or columns";
  return success();
}

LogicalResult DeltaSumOp::verify() {
  ArrayRef<int64_t> lowrank = getLowrank().getType().getShape();
  ArrayRef<int64_t> base = getBase().getType().getShape();
  ArrayRef<int64_t> out = getResult().getType().getShape();
  if (dimsConflict(lowrank[0], base[0]) || dimsConflict(out[0], lowrank[0]) ||
      out[1] != lowrank[1])
    return emitOpError() << "result " << shapeString(out) << " must have the rows of "
                         << shapeString(lowrank) << " and " << shapeString(base)
                         << " and the columns of the former";
  if (ShapedType::isDynamic(base[1]) || base[1] > lowrank[1])
    return emitOpError() << "base output " << shapeString(base)
                         << " must have at most the low-rank output's "
                         << lowrank[1] << " columns";
  return success();
}

//===----------------------------------------------------------------------===//
// QuantizeOp / DequantizeOp
//===----------------------------------------------------------------------===//

LogicalResult QuantizeOp::verify() {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> out = getResult().getType().getShape();
  if (in != out)
    return emitOpError() << "input " << shapeString(in)
                         << " and packed weight " << shapeString(out)
                         << " have different shapes";
  if (getMethod() == QuantMethod::RTN && (getHessian() || getActOrder()))
    return emitOpError() << "'" << (getHessian() ? "hessian" : "act_order")
                         << "' needs method gptq or agq, not rtn";
  if (getMseClip() && getSalienceClip())
    return emitOpError() << "'mse_clip' and 'salience_clip' are alternative range searches; "
                            "choose one";
  return success();
}

LogicalResult DequantizeOp::verify() {
  ArrayRef<int64_t> in = getInput().getType().getShape();
  ArrayRef<int64_t> out = getResult().getType().getShape();
  if (dimsConflict(in[0], out[0]) || dimsConflict(in[1], out[1]))
    return emitOpError() << "packed weight " << shapeString(in)
                         << " and result " << shapeString(out)
                         << " have different shapes";
  return success();
}

//===----------------------------------------------------------------------===//
// Launch plan
//===----------------------------------------------------------------------===//

bool mlir::moeq::isGlobalMemRef(Type type) {
  auto memref = dyn_cast<MemRefType>(type);
  auto space = memref ? dyn_cast_or_null<gpu::AddressSpaceAttr>(memref.getMemorySpace())
                      : gpu::AddressSpaceAttr();
  return space && space.getValue() == gpu::AddressSpace::Global;
}

bool mlir::moeq::isDevicePointer(Type type) {
  auto ptr = dyn_cast<LLVM::LLVMPointerType>(type);
  return ptr && ptr.getAddressSpace() == 1;
}

LogicalResult DeviceParamOp::verify() {
  MemRefType type = getType();
  if (!type.hasStaticShape() || type.getRank() < 1 || type.getRank() > 2)
    return emitOpError() << "a device parameter is a static 1-D or 2-D memref, got " << type;
  Type element = type.getElementType();
  if (!element.isF16() && !element.isF32() && !element.isInteger(32))
    return emitOpError() << "a device parameter holds f16, f32 or i32, got " << element;
  if (!type.getLayout().isIdentity())
    return emitOpError() << "a device parameter is row-major (identity layout)";
  return success();
}

int64_t KernelPointerOp::getRowElements() {
  ArrayRef<int64_t> shape = getBuffer().getType().getShape();
  int64_t elements = 1;
  for (int64_t d : shape.drop_front())
    elements *= d;
  return elements;
}

LogicalResult KernelPointerOp::verify() {
  MemRefType type = getBuffer().getType();
  if (type.getRank() < 1 || !type.getLayout().isIdentity())
    return emitOpError() << "needs a row-major buffer of rank >= 1, got " << type;
  if (llvm::any_of(type.getShape().drop_front(), ShapedType::isDynamic))
    return emitOpError() << "only the leading dimension of " << type << " may be dynamic";
  return success();
}

LogicalResult DeviceAddressTableOp::verify() {
  MemRefType type = getType();
  ArrayRef<int64_t> rows = getRowSizes();
  if (type.getRank() != 2 || !type.hasStaticShape() || !type.getElementType().isInteger(64))
    return emitOpError() << "an address table is a static 2-D i64 memref, got " << type;
  if (type.getDimSize(0) != int64_t(rows.size()))
    return emitOpError() << "has " << rows.size() << " rows of addresses, the table "
                         << type.getDimSize(0);
  int64_t total = 0;
  for (auto [r, size] : llvm::enumerate(rows)) {
    if (size < 0 || size > type.getDimSize(1))
      return emitOpError() << "row " << r << " has " << size << " addresses, the table "
                           << type.getDimSize(1) << " columns";
    total += size;
  }
  if (total != int64_t(getParams().size()))
    return emitOpError() << "rows hold " << total << " addresses but " << getParams().size()
                         << " parameters are given";
  return success();
}

//===----------------------------------------------------------------------===//
// Packed codes
//===----------------------------------------------------------------------===//

namespace {
/// The number of values of an i32/f16/f32 scalar (1) or 1-D vector.
int64_t valueCount(Type type) {
  if (auto vector = dyn_cast<VectorType>(type))
    return vector.getNumElements();
  return 1;
}

/// `indices` address a row of `memref` (all but its last dimension).
LogicalResult verifyRowIndices(Operation *op, MemRefType memref, ValueRange indices) {
  if (int64_t(indices.size()) + 1 != memref.getRank())
    return op->emitOpError() << "needs " << memref.getRank() - 1
                             << " indices to address a row of " << memref << ", got "
                             << indices.size();
  return success();
}
} // namespace

LogicalResult UnpackCodesOp::verify() {
  if (failed(verifyRowIndices(*this, getWords().getType(), getIndices())))
    return failure();
  int64_t bits = getBits(), count = getCount();
  if (count * bits > 32)
    return emitOpError() << count << " codes of " << bits
                         << " bits do not fit one 32-bit window";
  if (valueCount(getCodes().getType()) != count)
    return emitOpError() << "result " << getCodes().getType() << " does not hold " << count
                         << " codes";
  if (getWidth() && (count != 1 || getAligned()))
    return emitOpError() << "a dynamic 'width' reads one code, not 'aligned'";
  if (getAligned() && 32 % (count * bits) != 0)
    return emitOpError() << "'aligned' needs " << count << " x " << bits
                         << " bits to divide 32";
  return success();
}

LogicalResult DequantizeCodesOp::verify() {
  if (valueCount(getCodes().getType()) != valueCount(getResult().getType()))
    return emitOpError() << "result " << getResult().getType() << " does not match the codes "
                         << getCodes().getType();
  return success();
}

LogicalResult LookupLevelsOp::verify() {
  if (failed(verifyRowIndices(*this, getLevels().getType(), getIndices())))
    return failure();
  if (valueCount(getCodes().getType()) != valueCount(getResult().getType()))
    return emitOpError() << "result " << getResult().getType() << " does not match the codes "
                         << getCodes().getType();
  return success();
}

//===----------------------------------------------------------------------===//
// Tensor-core tiles
//===----------------------------------------------------------------------===//

/// gpu.address_space<workgroup>, or NVVM's shared address space 3.
static bool isSharedMemory(MemRefType type) {
  auto nvvmSpace = dyn_cast_or_null<IntegerAttr>(type.getMemorySpace());
  return gpu::GPUDialect::isWorkgroupMemoryAddressSpace(type.getMemorySpace()) ||
         (nvvmSpace && nvvmSpace.getInt() == 3);
}

/// One mbarrier per stage, static, in shared memory.
static LogicalResult verifyBarriers(Operation *op, MemRefType barriers) {
  if (!barriers.hasStaticShape() || !isSharedMemory(barriers))
    return op->emitOpError() << "needs static mbarriers in shared memory, got " << barriers;
  return success();
}

LogicalResult InitTileBarriersOp::verify() {
  return verifyBarriers(*this, getBarriers().getType());
}

LogicalResult WaitTileBarrierOp::verify() {
  return verifyBarriers(*this, getBarriers().getType());
}

/// Bulk copies (with mbarriers): whole rows of 16-byte multiples between
/// 16-byte aligned rows.
static LogicalResult verifyBulkTileCopy(LoadTileAsyncOp op) {
  MemRefType source = op.getSource().getType(), tiles = op.getTiles().getType();
  MemRefType barriers = cast<MemRefType>(op.getBarriers().getType());
  if (failed(verifyBarriers(op, barriers)))
    return failure();
  if (barriers.getDimSize(0) != tiles.getDimSize(0))
    return op.emitOpError() << "needs one mbarrier per stage, got " << barriers.getDimSize(0)
                            << " for " << tiles.getDimSize(0) << " stages";
  if (tiles.getRank() != 3 || op.getChunksPerRow())
    return op.emitOpError() << "copies rows of a fixed length into row-major tiles in bulk";
  int64_t elementBits = tiles.getElementType().getIntOrFloatBitWidth();
  auto multipleOf16Bytes = [&](int64_t elements) {
    return elements >= 0 && elements <= (int64_t(1) << 40) && elements * elementBits % 128 == 0;
  };
  if (!multipleOf16Bytes(op.getColumns()) || !multipleOf16Bytes(tiles.getDimSize(2)) ||
      source.isDynamicDim(1) || !multipleOf16Bytes(source.getDimSize(1)))
    return op.emitOpError() << "bulk-copies rows of 16-byte multiples between rows 16-byte "
                               "aligned, got rows of "
                            << op.getColumns() << " elements between " << source << " and "
                            << tiles;
  return success();
}

LogicalResult LoadTileAsyncOp::verify() {
  MemRefType source = getSource().getType(), tiles = getTiles().getType();
  if (!tiles.hasStaticShape())
    return emitOpError() << "needs static staged tiles, got " << tiles;
  if (source.getElementType() != tiles.getElementType())
    return emitOpError() << "copies " << source.getElementType() << " into tiles of "
                         << tiles.getElementType();
  if (!tiles.getElementType().isIntOrFloat())
    return emitOpError() << "copies integers or floats, not " << tiles.getElementType();
  int64_t columns = getColumns(), chunk = getChunk();
  if (columns % chunk != 0)
    return emitOpError() << "row of " << columns << " elements is not whole chunks of "
                         << chunk;
  unsigned elementBits = tiles.getElementType().getIntOrFloatBitWidth();
  int64_t rowLength = tiles.getDimSize(2);
  if (tiles.getRank() == 5) {
    // Core matrices: 8 rows of 16 bytes; a chunk stays in one of their rows.
    int64_t perCoreRow = tiles.getDimSize(4);
    if (tiles.getDimSize(3) != 8 || perCoreRow * elementBits != 128)
      return emitOpError() << "needs core matrices of 8 rows x 16 bytes ([stages, rows / 8, "
                              "K / E, 8, E]), got "
                           << tiles;
    if (perCoreRow % chunk != 0)
      return emitOpError() << "chunk of " << chunk << " elements straddles a core-matrix row of "
                           << perCoreRow;
    rowLength = tiles.getDimSize(2) * perCoreRow;
  }
  if (columns > rowLength)
    return emitOpError() << "row of " << columns << " elements does not fit the tiles' rows of "
                         << rowLength;
  if (getThreads() % 32 != 0)
    return emitOpError() << "is collective over whole warps, got " << getThreads()
                         << " threads";
  // (A chunk above 128 elements is too large whatever their size, and its
  // size in bits could overflow.)
  int64_t chunkBytes = chunk <= 128 ? chunk * elementBits / 8 : 17;
  if (chunkBytes > 16 || chunk * elementBits % 8 != 0 ||
      (chunkBytes >= 4 && !llvm::is_contained({4, 8, 16}, chunkBytes)))
    return emitOpError() << "chunk of " << chunk << " x " << elementBits
                         << " bits is not a cp.async size (4, 8 or 16 bytes) or below 4 bytes";
  if (getBarriers())
    return verifyBulkTileCopy(*this);
  return success();
}

LogicalResult WarpGroupMmaOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                               WarpGroupMmaOp::Adaptor adaptor,
                                               SmallVectorImpl<Type> &inferred) {
  llvm::append_range(inferred, adaptor.getAcc().getTypes());
  return success();
}

LogicalResult WarpGroupMmaOp::verify() {
  MemRefType lhs = getLhs().getType(), rhs = getRhs().getType();
  for (MemRefType tiles : {lhs, rhs}) {
    if (!isSharedMemory(tiles))
      return emitOpError() << "reads its operands from shared memory, got " << tiles;
    if (!tiles.hasStaticShape() || tiles.getDimSize(3) != 8 || tiles.getDimSize(4) != 8)
      return emitOpError() << "needs static f16 tiles of 8 x 8 core matrices ([stages, rows / 8, "
                              "K / 8, 8, 8]), got "
                           << tiles;
  }
  if (lhs.getDimSize(2) != rhs.getDimSize(2))
    return emitOpError() << "multiplies tiles of " << 8 * lhs.getDimSize(2) << " and "
                         << 8 * rhs.getDimSize(2) << " K elements";
  if (lhs.getDimSize(2) % 2 != 0)
    return emitOpError() << "steps K by 16, got tiles of " << 8 * lhs.getDimSize(2);
  int64_t blocks = getAcc().size();
  if (blocks < 1 || blocks > 32)
    return emitOpError() << "needs 1 to 32 accumulators (N = 8 to 256), got " << blocks;
  auto f32x2x2 = VectorType::get({2, 2}, Float32Type::get(getContext()));
  if (llvm::any_of(getAcc().getTypes(), [&](Type t) { return t != f32x2x2; }))
    return emitOpError() << "accumulates in vector<2x2xf32> blocks";
  // Operand rows in range where the offsets are constants.
  auto checkRows = [&](Value offset, int64_t count, MemRefType tiles,
                       StringRef what) -> LogicalResult {
    int64_t rows = 8 * tiles.getDimSize(1);
    if (rows < count)
      return emitOpError() << "reads " << count << " " << what << " from tiles of " << rows;
    APInt value;
    if (!matchPattern(offset, m_ConstantInt(&value)))
      return success();
    int64_t start = value.getSExtValue();
    if (start % 8 != 0 || start < 0 || start > rows - count)
      return emitOpError() << "reads " << what << " " << start << " to " << start + count
                           << ", not whole core matrices of the tiles' " << rows;
    return success();
  };
  if (failed(checkRows(getRow(), 64, lhs, "rows")) ||
      failed(checkRows(getColumn(), 8 * blocks, rhs, "columns")))
    return failure();
  return success();
}

LogicalResult MmaTileOp::inferReturnTypes(MLIRContext *, std::optional<Location>,
                                          MmaTileOp::Adaptor adaptor,
                                          SmallVectorImpl<Type> &inferred) {
  llvm::append_range(inferred, adaptor.getAcc().getTypes());
  return success();
}

LogicalResult MmaTileOp::verify() {
  size_t rows = getLhs().size(), columns = getRhs().size();
  if (rows == 0 || columns == 0)
    return emitOpError() << "needs at least one A and one B fragment";
  if (getAcc().size() != rows * columns)
    return emitOpError() << "needs " << rows << " x " << columns
                         << " accumulators, one per product, got " << getAcc().size();
  auto uniform = [](ValueRange values) {
    return llvm::all_equal(llvm::map_range(values, [](Value v) { return v.getType(); }));
  };
  if (!uniform(getLhs()) || !uniform(getRhs()) || !uniform(getAcc()))
    return emitOpError() << "needs one type per operand group (A, B, accumulators)";
  if (getMmaShape().size() != 3)
    return emitOpError() << "mma_shape is [m, n, k], got " << getMmaShape().size()
                         << " sizes";
  return success();
}

LogicalResult StoreTileOp::verify() {
  ArrayRef<int64_t> tiles = getTiles();
  if (tiles.size() != 2 || tiles[0] < 1 || tiles[1] < 1)
    return emitOpError() << "tiles is [tm, tn] of positive sizes";
  int64_t count = getAccumulators().size();
  // (Sizes above the count first: their product could overflow.)
  if (tiles[0] > count || tiles[1] > count || count != tiles[0] * tiles[1])
    return emitOpError() << "needs " << tiles[0] << " x " << tiles[1]
                         << " accumulators, got " << getAccumulators().size();
  for (Value accumulator : getAccumulators()) {
    auto type = cast<VectorType>(accumulator.getType());
    if (type.getShape() != ArrayRef<int64_t>{2, 2})
      return emitOpError() << "accumulators are m16n8 fragments (vector<2x2x...>), got " << type;
    if (type.getElementType().isInteger(32) && !getColumnScales())
      return emitOpError() << "stores s32 sums only scaled by column_scales";
  }
  if (getOutput().getType().getShape()[1] == ShapedType::kDynamic)
    return emitOpError() << "needs the output's width (a static second dimension)";
  return success();
}

LogicalResult ForEachTileOp::verify() {
  size_t mixes = getBm().size();
  if (mixes == 0 || getTilesN().size() != mixes)
    return emitOpError() << "needs bm and tiles_n for each mix, got " << mixes << " and "
                         << getTilesN().size();
  if (llvm::any_of(getBm(), [](int64_t v) { return v < 1; }) ||
      llvm::any_of(getTilesN(), [](int64_t v) { return v < 1; }))
    return emitOpError() << "needs positive tile rows and column counts";
  if (mixes > 1 && !getMixOf())
    return emitOpError() << "needs mix_of to choose among " << mixes << " mixes";
  Block &body = getBody().front();
  if (body.getNumArguments() != 5 ||
      !llvm::all_of(body.getArgumentTypes(), [](Type t) { return t.isIndex(); }))
    return emitOpError() << "body takes 5 index arguments (expert, tile, first row, end row, "
                            "mix), got "
                         << body.getNumArguments();
  int64_t offsets = getOffsets().getType().getDimSize(0);
  if (ShapedType::isDynamic(offsets) || offsets < 2)
    return emitOpError() << "needs the offsets of at least one expert (a static size of 2 or "
                            "more), got "
                         << getOffsets().getType();
  if (getMixOf()) {
    int64_t table = getMixOf().getType().getDimSize(0);
    if (!ShapedType::isDynamic(table) && table != offsets - 1)
      return emitOpError() << "has " << offsets - 1 << " experts but " << table
                           << " entries in mix_of";
  }
  return success();
}

LogicalResult LoadFragmentOp::verify() {
  Type tile = getTiles().getType().getElementType();
  VectorType fragment = getFragment().getType();
  Type element = fragment.getElementType();
  int64_t rows = fragment.getDimSize(0), perRow = fragment.getDimSize(1);
  // The fragments mma.sync takes, each with the tile element it comes from.
  bool isA = rows == 4, isB = rows == 2;
  bool f16 = element.isF16() && perRow == 2 && tile.isF16();
  bool s8 = element.isInteger(8) && perRow == 4;
  bool s4 = element.isInteger(4) && perRow == 8;
  if ((isA || isB) && f16)
    return success();
  if (isA && (s8 || s4) && tile.isInteger(8))
    return success();
  if (isB && (s8 || s4) && tile.isInteger(32))
    return success();
  return emitOpError() << "cannot load a " << fragment << " fragment from a tile of " << tile
                       << " (A: 4x2xf16 from f16, 4x4xi8 or 4x8xi4 from i8; B: 2x2xf16 from "
                          "f16, 2x4xi8 or 2x8xi4 from i32 words)";
}
