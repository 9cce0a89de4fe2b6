//===- MoEQDialect.cpp - MoEQ dialect registration ------------------------===//
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include "mlir/IR/DialectImplementation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moeq;

#include "moeq/Dialect/MoEQ/IR/MoEQOpsDialect.cpp.inc"

void MoEQDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moeq/Dialect/MoEQ/IR/MoEQOps.cpp.inc"
      >();
  registerAttributesAndTypes();
}

//===----------------------------------------------------------------------===//
// The dialect's discardable attributes (MoEQBase.td `discardableAttrs`)
//===----------------------------------------------------------------------===//

namespace {
/// What a discardable attribute must be and where it may appear.
struct AttrRule {
  StringRef name;
  /// "an integer", "a #moeq.target", ...: what `valueIsValid` accepts.
  StringRef valueKind;
  function_ref<bool(Attribute)> valueIsValid;
  /// "a module", "a function", ...: what `hostIsValid` accepts.
  StringRef hostKind;
  function_ref<bool(Operation *)> hostIsValid;
};

bool isModule(Operation *op) { return isa<ModuleOp>(op); }
bool isFunction(Operation *op) { return isa<FunctionOpInterface>(op); }
bool isGroupedMatmul(Operation *op) { return isa<GroupedMatmulOp>(op); }
bool isAnyOp(Operation *) { return true; }

bool isNonNegativeInteger(Attribute attr) {
  auto integer = dyn_cast<IntegerAttr>(attr);
  return integer && integer.getType().isSignlessInteger() && !integer.getValue().isNegative();
}
bool isPositiveInteger(Attribute attr) {
  return isNonNegativeInteger(attr) && !cast<IntegerAttr>(attr).getValue().isZero();
}
/// A K loop pipelines at least 2 stages (one has nothing to overlap).
bool isPipelineDepth(Attribute attr) {
  return isNonNegativeInteger(attr) && cast<IntegerAttr>(attr).getValue().uge(2);
}
bool isDictionary(Attribute attr) { return isa<DictionaryAttr>(attr); }
bool isStringDictionary(Attribute attr) {
  auto dict = dyn_cast<DictionaryAttr>(attr);
  return dict && llvm::all_of(dict, [](NamedAttribute entry) {
           return isa<StringAttr>(entry.getValue());
         });
}
bool isParamList(Attribute attr) {
  auto array = dyn_cast<ArrayAttr>(attr);
  return array && llvm::all_of(array, llvm::IsaPred<ExternalParamAttr>);
}
bool isSourceList(Attribute attr) {
  auto array = dyn_cast<ArrayAttr>(attr);
  return array && llvm::all_of(array, llvm::IsaPred<ExternalParamAttr, UnitAttr>);
}

LogicalResult verifyAgainst(ArrayRef<AttrRule> rules, Operation *op, NamedAttribute attribute,
                            StringRef where) {
  StringRef name = attribute.getName().getValue();
  for (const AttrRule &rule : rules) {
    if (rule.name != name)
      continue;
    if (!rule.hostIsValid(op))
      return op->emitError() << "'" << name << "' belongs on " << rule.hostKind << where;
    if (!rule.valueIsValid(attribute.getValue()))
      return op->emitError() << "'" << name << "' must be " << rule.valueKind << ", got "
                             << attribute.getValue() << where;
    return success();
  }
  return op->emitError() << "unknown moeq attribute '" << name << "'" << where;
}
} // namespace

LogicalResult MoEQDialect::verifyOperationAttribute(Operation *op, NamedAttribute attribute) {
  const AttrRule rules[] = {
      {LayerAttrHelper::getNameStr(), "a non-negative integer", isNonNegativeInteger,
       "a function", isFunction},
      {TargetAttrHelper::getNameStr(), "a #moeq.target", llvm::IsaPred<TargetAttr>, "a module",
       isModule},
      {ArchivesAttrHelper::getNameStr(), "a dictionary of paths (strings)", isStringDictionary,
       "a module", isModule},
      {ModelAttrHelper::getNameStr(), "a dictionary", isDictionary, "a module", isModule},
      {PassthroughAttrHelper::getNameStr(), "an array of #moeq.param", isParamList, "a module",
       isModule},
      {SensitivityAttrHelper::getNameStr(), "a dictionary", isDictionary, "a moeq.moe",
       llvm::IsaPred<MoEOp>},
      {AllocationAttrHelper::getNameStr(), "a dictionary", isDictionary, "a function",
       isFunction},
      {ModelAllocationAttrHelper::getNameStr(), "a dictionary", isDictionary, "a module",
       isModule},
      {DeltaAttrHelper::getNameStr(), "a dictionary", isDictionary, "a function", isFunction},
      {DeltaSourcesAttrHelper::getNameStr(), "an array of #moeq.param or unit", isSourceList,
       "a moeq.grouped_matmul", isGroupedMatmul},
      {RowsPerExpertAttrHelper::getNameStr(), "a positive integer", isPositiveInteger,
       "a moeq.grouped_matmul or moeq.linear", llvm::IsaPred<GroupedMatmulOp, LinearOp>},
      {LaunchPlanAttrHelper::getNameStr(), "a symbol reference", llvm::IsaPred<FlatSymbolRefAttr>,
       "a function", isFunction},
      {NameAttrHelper::getNameStr(), "a string", llvm::IsaPred<StringAttr>, "any operation",
       isAnyOp},
      {PersistentAttrHelper::getNameStr(), "a unit attribute", llvm::IsaPred<UnitAttr>,
       "a moeq.grouped_matmul", isGroupedMatmul},
      {HessianAttrHelper::getNameStr(), "a #moeq.param", llvm::IsaPred<ExternalParamAttr>,
       "a moeq.param", llvm::IsaPred<ParamOp>},
      {PipelineStagesAttrHelper::getNameStr(), "a stage count of at least 2", isPipelineDepth,
       "an scf.for", llvm::IsaPred<scf::ForOp>},
  };
  return verifyAgainst(rules, op, attribute, "");
}

/// Function argument attributes of the CPU lowering (moeq-convert-to-linalg):
/// what a runtime binds each argument to.
LogicalResult MoEQDialect::verifyRegionArgAttribute(Operation *op, unsigned regionIndex,
                                                    unsigned argIndex,
                                                    NamedAttribute attribute) {
  const AttrRule rules[] = {
      {kParamArgAttrName, "a #moeq.param", llvm::IsaPred<ExternalParamAttr>, "a function argument",
       isFunction},
      {kOutputArgAttrName, "a unit attribute", llvm::IsaPred<UnitAttr>, "a function argument",
       isFunction},
      {kTraceArgAttrName, "a string", llvm::IsaPred<StringAttr>, "a function argument", isFunction},
  };
  return verifyAgainst(rules, op, attribute,
                       llvm::formatv(" (argument {0} of region {1})", argIndex, regionIndex)
                           .str());
}
