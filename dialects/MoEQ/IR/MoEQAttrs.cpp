//===- MoEQAttrs.cpp - MoEQ attributes and types --------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moeq;

#include "moeq/Dialect/MoEQ/IR/MoEQEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "moeq/Dialect/MoEQ/IR/MoEQAttrs.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "moeq/Dialect/MoEQ/IR/MoEQOpsTypes.cpp.inc"

void MoEQDialect::registerAttributesAndTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "moeq/Dialect/MoEQ/IR/MoEQOpsTypes.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moeq/Dialect/MoEQ/IR/MoEQAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// SchemeAttr
//===----------------------------------------------------------------------===//

// Syntax: `<` `w` bits `a` bits `,` (`g` size | `per_channel`) `,`
//         (`sym` | `asym`) (`,` format)? `>`
Attribute SchemeAttr::parse(AsmParser &parser, Type) {
  MLIRContext *ctx = parser.getContext();
  auto loc = parser.getCurrentLocation();
  StringRef bitsWord, groupWord, symWord;
  if (parser.parseLess() || parser.parseKeyword(&bitsWord) || parser.parseComma())
    return {};
  unsigned weightBits = 0, actBits = 0;
  // "w4a16": split at 'a'.
  size_t aPos = bitsWord.find('a');
  if (!bitsWord.consume_front("w") || aPos == StringRef::npos ||
      bitsWord.substr(0, aPos - 1).getAsInteger(10, weightBits) ||
      bitsWord.substr(aPos).getAsInteger(10, actBits)) {
    parser.emitError(loc, "expected weight/activation bits like 'w4a16'");
    return {};
  }
  auto groupLoc = parser.getCurrentLocation();
  if (parser.parseKeyword(&groupWord) || parser.parseComma())
    return {};
  int64_t groupSize = 0;
  if (groupWord != "per_channel" &&
      (!groupWord.consume_front("g") || groupWord.getAsInteger(10, groupSize))) {
    parser.emitError(groupLoc, "expected group size like 'g128' or 'per_channel'");
    return {};
  }
  auto symLoc = parser.getCurrentLocation();
  if (parser.parseKeyword(&symWord))
    return {};
  if (symWord != "sym" && symWord != "asym") {
    parser.emitError(symLoc, "expected 'sym' or 'asym'");
    return {};
  }
  NumberFormat format = NumberFormat::Int;
  if (succeeded(parser.parseOptionalComma())) {
    auto fmtLoc = parser.getCurrentLocation();
    StringRef fmtWord;
    if (parser.parseKeyword(&fmtWord))
      return {};
    std::optional<NumberFormat> parsed = symbolizeNumberFormat(fmtWord);
    if (!parsed) {
      parser.emitError(fmtLoc, "unknown number format '") << fmtWord << "'";
      return {};
    }
    format = *parsed;
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<SchemeAttr>(ctx, weightBits, actBits, groupSize,
                                       symWord == "sym", format);
}

void SchemeAttr::print(AsmPrinter &printer) const {
  printer << "<w" << getWeightBits() << "a" << getActBits() << ", ";
  if (isPerChannel())
    printer << "per_channel";
  else
    printer << "g" << getGroupSize();
  printer << ", " << (getSymmetric() ? "sym" : "asym");
  if (getFormat() != NumberFormat::Int)
    printer << ", " << stringifyNumberFormat(getFormat());
  printer << ">";
}

LogicalResult SchemeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 unsigned weightBits, unsigned actBits,
                                 int64_t groupSize, bool symmetric,
                                 NumberFormat format) {
  if (!((weightBits >= 1 && weightBits <= 8) || weightBits == 16))
    return emitError() << "weight bits must be 1-8 or 16, got " << weightBits;
  if (actBits != 4 && actBits != 8 && actBits != 16)
    return emitError() << "activation bits must be 4, 8 or 16, got " << actBits;
  if (groupSize < 0 || (groupSize > 0 && groupSize % 8 != 0))
    return emitError() << "group size must be a positive multiple of 8 or "
                          "per_channel, got "
                       << groupSize;
  if (actBits < 16 && (weightBits != actBits || format != NumberFormat::Int))
    return emitError() << "weight-activation schemes must be integer w8a8 or "
                          "w4a4, got w"
                       << weightBits << "a" << actBits;
  if (format == NumberFormat::FP8E4M3 && weightBits != 8)
    return emitError() << "fp8_e4m3 format needs 8 weight bits";
  if (format == NumberFormat::LevelTable && weightBits > 4)
    return emitError() << "level-table format supports at most 4 bits, got "
                       << weightBits;
  // A level table replaces scale and zero point: nothing to be symmetric.
  if (format == NumberFormat::LevelTable && symmetric)
    return emitError() << "level-table format stores its levels, it cannot be 'sym'";
  return success();
}

SmallVector<StringRef, 3> SchemeAttr::getStorageSuffixes() const {
  if (isLevelTable())
    return {".qweight", ".levels"};
  if (getSymmetric())
    return {".qweight", ".scales"};
  return {".qweight", ".scales", ".zeros"};
}

int64_t SchemeAttr::getNumGroups(int64_t inputDim) const {
  return isPerChannel() ? 1 : inputDim / getGroupSize();
}

int64_t SchemeAttr::getEffectiveGroupSize(int64_t inputDim) const {
  return isPerChannel() ? inputDim : getGroupSize();
}

double SchemeAttr::getBitsPerWeight(int64_t inputDim) const {
  if (!isQuantized())
    return 16.0;
  // One f16 scale per group, plus one f16 zero point when asymmetric; a
  // level table has 2^bits f16 levels per group instead.
  double overheadBits = isLevelTable()    ? 16.0 * (1 << getWeightBits())
                        : getSymmetric() ? 16.0
                                         : 32.0;
  // A row is stored in whole 32-bit words: its padding is stored too.
  int64_t wordsPerRow = (inputDim * getWeightBits() + 31) / 32;
  double codeBits = inputDim > 0 ? 32.0 * wordsPerRow / inputDim : getWeightBits();
  return codeBits + overheadBits / getEffectiveGroupSize(inputDim);
}

std::string SchemeAttr::getMangledName() const {
  std::string name = "w" + std::to_string(getWeightBits()) + "a" +
                     std::to_string(getActBits());
  name += isPerChannel() ? "pc" : "g" + std::to_string(getGroupSize());
  name += getSymmetric() ? "s" : "a";
  if (getFormat() != NumberFormat::Int)
    name += "_" + stringifyNumberFormat(getFormat()).str();
  return name;
}

SchemeAttr SchemeAttr::fromMangledName(MLIRContext *context, StringRef name,
                                       std::string &error) {
  StringRef rest = name;
  unsigned weightBits = 0, actBits = 0;
  int64_t groupSize = 0;
  auto malformed = [&]() {
    error = ("scheme '" + name + "' is not of the form "
             "w<bits>a<bits>(g<size>|pc)[a|s][_<format>], e.g. w4a16g128, w8a8pcs or "
             "w3a16g128a_lut").str();
    return SchemeAttr();
  };
  if (!rest.consume_front("w") || rest.consumeInteger(10, weightBits) ||
      !rest.consume_front("a") || rest.consumeInteger(10, actBits))
    return malformed();
  if (!rest.consume_front("pc") &&
      (!rest.consume_front("g") || rest.consumeInteger(10, groupSize) || groupSize <= 0))
    return malformed();
  bool symmetric = actBits < 16;
  if (rest.consume_front("s"))
    symmetric = true;
  else if (rest.consume_front("a"))
    symmetric = false;
  NumberFormat format = NumberFormat::Int;
  if (rest.consume_front("_")) {
    std::optional<NumberFormat> parsed = symbolizeNumberFormat(rest);
    if (!parsed)
      return malformed();
    format = *parsed;
    rest = "";
  }
  if (!rest.empty())
    return malformed();
  std::string diagnostic;
  auto diag = [&]() {
    return mlir::emitError(UnknownLoc::get(context));
  };
  // Capture the verifier's message instead of printing it.
  ScopedDiagnosticHandler handler(context, [&](Diagnostic &d) {
    diagnostic = d.str();
    return success();
  });
  SchemeAttr scheme =
      getChecked(diag, context, weightBits, actBits, groupSize, symmetric, format);
  if (!scheme)
    error = ("scheme '" + name + "': " + diagnostic).str();
  return scheme;
}

//===----------------------------------------------------------------------===//
// ExternalParamAttr, TileConfigAttr, TargetAttr
//===----------------------------------------------------------------------===//

LogicalResult
ExternalParamAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                          StringAttr scope, StringAttr key, int64_t index,
                          int64_t rowOffset, int64_t rowCount, bool transposed,
                          int64_t rowStep) {
  if (!scope || scope.getValue().empty())
    return emitError() << "parameter scope must not be empty";
  if (!key || key.getValue().empty())
    return emitError() << "parameter key must not be empty";
  if (index < -1)
    return emitError() << "parameter index must be non-negative, got " << index;
  bool noRows = rowCount == -1 && rowOffset == -1;
  if (!noRows && (rowCount <= 0 || rowOffset < 0))
    return emitError() << "parameter rows must be [offset >= 0, count > 0], got ["
                       << rowOffset << ", " << rowCount << "]";
  if (rowStep < 1)
    return emitError() << "parameter row step must be at least 1, got " << rowStep;
  if (rowStep > 1 && noRows)
    return emitError() << "parameter row step " << rowStep << " needs a row range";
  return success();
}

Attribute ExternalParamAttr::parse(AsmParser &parser, Type) {
  std::string scope, key;
  int64_t index = -1, rowOffset = -1, rowCount = -1, rowStep = 1;
  bool transposed = false;
  if (parser.parseLess() || parser.parseString(&scope) || parser.parseComma() ||
      parser.parseString(&key))
    return {};
  if (succeeded(parser.parseOptionalKeyword("index")) && parser.parseInteger(index))
    return {};
  transposed = succeeded(parser.parseOptionalKeyword("transposed"));
  if (succeeded(parser.parseOptionalKeyword("rows")) &&
      (parser.parseLSquare() || parser.parseInteger(rowOffset) || parser.parseComma() ||
       parser.parseInteger(rowCount) || parser.parseRSquare()))
    return {};
  if (succeeded(parser.parseOptionalKeyword("step")) && parser.parseInteger(rowStep))
    return {};
  if (parser.parseGreater())
    return {};
  MLIRContext *ctx = parser.getContext();
  return parser.getChecked<ExternalParamAttr>(ctx, StringAttr::get(ctx, scope),
                                              StringAttr::get(ctx, key), index, rowOffset,
                                              rowCount, transposed, rowStep);
}

void ExternalParamAttr::print(AsmPrinter &printer) const {
  printer << "<";
  printer.printString(getScope().getValue());
  printer << ", ";
  printer.printString(getKey().getValue());
  if (getIndex() >= 0)
    printer << " index " << getIndex();
  if (getTransposed())
    printer << " transposed";
  if (getRowCount() >= 0)
    printer << " rows [" << getRowOffset() << ", " << getRowCount() << "]";
  if (getRowStep() != 1)
    printer << " step " << getRowStep();
  printer << ">";
}

ExternalParamAttr ExternalParamAttr::withKeySuffix(StringRef suffix) const {
  MLIRContext *ctx = getContext();
  return ExternalParamAttr::get(ctx, getScope(),
                                StringAttr::get(ctx, getKey().getValue() + suffix));
}

LogicalResult TileConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                     KernelFamily path, int64_t bm, int64_t bn, int64_t bk,
                                     int64_t warps, int64_t stages,
                                     int64_t splitK) {
  for (auto [name, value] : {std::pair<StringRef, int64_t>{"bm", bm},
                             {"bn", bn}, {"bk", bk}}) {
    if (value <= 0 || !llvm::isPowerOf2_64(value))
      return emitError() << "tile " << name << " must be a positive power of two, got "
                         << value;
  }
  if (warps <= 0 || warps > 32 || !llvm::isPowerOf2_64(warps))
    return emitError() << "warps must be a power of two in [1, 32], got " << warps;
  if (stages < 1 || stages > 8)
    return emitError() << "pipeline stages must be in [1, 8], got " << stages;
  if (splitK < 1)
    return emitError() << "split_k must be at least 1, got " << splitK;
  // The tensor-core kernel tiles the output into m16n8 MMA tiles.
  bool tensorCore = path != KernelFamily::Simt;
  if (tensorCore && (bm < 16 || bn < 8 || bk < 16))
    return emitError() << "an mma tile needs bm >= 16, bn >= 8 and bk >= 16, got " << bm
                       << "x" << bn << "x" << bk;
  // The tensor-core kernel keeps stages - 1 K steps in flight and waits
  // with cp.async.wait_group stages - 2: one stage has nothing to overlap
  // and would wait for a negative number of groups.
  if (tensorCore && stages < 2)
    return emitError() << "an mma tile pipelines K through at least 2 stages, got " << stages;
  // wgmma: warpgroups of 4 warps own 64 rows each (m64nNk16), rows first,
  // then columns in whole n8 blocks of at most 256.
  if (path == KernelFamily::WarpGroupMma) {
    if (warps % 4 || bm % 64 || (warps / 4) % (bm / 64))
      return emitError() << "a wgmma tile needs warpgroups of 4 warps owning 64 rows each, got "
                         << bm << " rows on " << warps << " warps";
    int64_t groupsN = warps / 4 / (bm / 64);
    if (bn % (8 * groupsN) || bn / groupsN > 256 || bk % 16)
      return emitError() << "a wgmma tile needs n8 blocks of at most 256 columns per warpgroup "
                            "and bk a multiple of 16, got "
                         << bn << " columns on " << groupsN << " warpgroups, bk " << bk;
    if (splitK != 1)
      return emitError() << "a wgmma tile does not split K, got split_k " << splitK;
  }
  return success();
}

static std::optional<unsigned> parseComputeCapability(StringRef chip) {
  static const std::pair<StringRef, unsigned> kKnownChips[] = {
      {"sm_80", 80}, {"sm_86", 86}, {"sm_89", 89},
      {"sm_90", 90}, {"sm_90a", 90}, {"sm_100", 100}};
  for (auto [name, cc] : kKnownChips)
    if (chip == name)
      return cc;
  return std::nullopt;
}

LogicalResult TargetAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 StringAttr chip) {
  if (!chip || !parseComputeCapability(chip.getValue()))
    return emitError() << "unknown GPU architecture '"
                       << (chip ? chip.getValue() : "")
                       << "' (known: sm_80, sm_86, sm_89, sm_90, sm_90a, sm_100)";
  return success();
}

unsigned TargetAttr::getComputeCapability() const {
  return *parseComputeCapability(getChip().getValue());
}

bool TargetAttr::hasWarpGroupMMA() const { return getChip().getValue() == "sm_90a"; }

//===----------------------------------------------------------------------===//
// PackedWeightType
//===----------------------------------------------------------------------===//

Type PackedWeightType::parse(AsmParser &parser) {
  SmallVector<int64_t> shape;
  SchemeAttr scheme;
  if (parser.parseLess() ||
      parser.parseDimensionList(shape, /*allowDynamic=*/false,
                                /*withTrailingX=*/false) ||
      parser.parseComma() || parser.parseAttribute(scheme))
    return {};
  SmallVector<int64_t> groupBits;
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("group_bits") || parser.parseEqual() ||
        parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&]() {
          return parser.parseInteger(groupBits.emplace_back());
        }))
      return {};
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<PackedWeightType>(parser.getContext(), shape, scheme, groupBits);
}

void PackedWeightType::print(AsmPrinter &printer) const {
  printer << "<";
  llvm::interleave(getShape(), printer, "x");
  printer << ", " << getScheme();
  if (hasGroupBits()) {
    printer << ", group_bits = [";
    llvm::interleaveComma(getGroupBits(), printer);
    printer << "]";
  }
  printer << ">";
}

LogicalResult
PackedWeightType::verify(function_ref<InFlightDiagnostic()> emitError,
                         ArrayRef<int64_t> shape, SchemeAttr scheme,
                         ArrayRef<int64_t> groupBits) {
  if (shape.size() != 2)
    return emitError() << "packed weight must be 2-D (out x in), got rank "
                       << shape.size();
  if (shape[0] <= 0 || shape[1] <= 0)
    return emitError() << "packed weight dimensions must be positive";
  if (!scheme.isQuantized())
    return emitError() << "packed weight needs a scheme below 16 bits";
  int64_t inputDim = shape[1];
  if (!scheme.isPerChannel() && inputDim % scheme.getGroupSize() != 0)
    return emitError() << "input dimension " << inputDim
                       << " is not a multiple of the group size "
                       << scheme.getGroupSize();
  if (groupBits.empty())
    return success();
  if (scheme.isLevelTable())
    return emitError() << "group bits do not combine with level tables";
  if (scheme.isPerChannel() || scheme.quantizesActivations() || scheme.getSymmetric())
    return emitError() << "group bits need an asymmetric weight-only scheme with column "
                          "groups";
  int64_t groups = scheme.getNumGroups(inputDim), sum = 0;
  if (int64_t(groupBits.size()) != groups)
    return emitError() << "group bits must give one width per column group (" << groups
                       << "), got " << groupBits.size();
  for (int64_t bits : groupBits) {
    if (bits < 1 || bits > 8)
      return emitError() << "group bits must be 1-8, got " << bits;
    if (scheme.getGroupSize() * bits % 32 != 0)
      return emitError() << "a group of " << scheme.getGroupSize() << " x " << bits
                         << "-bit codes does not fill whole 32-bit words";
    sum += bits;
  }
  if (sum != groups * int64_t(scheme.getWeightBits()))
    return emitError() << "group bits must average the scheme's " << scheme.getWeightBits()
                       << " bits, got " << sum << " over " << groups << " groups";
  return success();
}

bool PackedWeightType::hasGroupBits() const { return !getGroupBits().empty(); }

unsigned PackedWeightType::getBitsOfGroup(int64_t group) const {
  return hasGroupBits() ? unsigned(getGroupBits()[group]) : getScheme().getWeightBits();
}

ArrayRef<int64_t> mlir::moeq::getWeightShape(Type weightType) {
  if (auto packed = dyn_cast<PackedWeightType>(weightType))
    return packed.getShape();
  return cast<ShapedType>(weightType).getShape();
}
