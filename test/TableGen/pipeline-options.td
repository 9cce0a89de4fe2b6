// moeq-tblgen -gen-pipeline-options: a pipeline's options struct, the copies
// into the options of the passes that share option records with it, and a
// tool's flags, from one declaration per option.
// RUN: moeq-tblgen -gen-pipeline-options -I %mlir_include_dir -I %S/../../include %s | FileCheck %s
// RUN: not moeq-tblgen -gen-pipeline-options -I %mlir_include_dir -I %S/../../include -DDUPLICATE %s 2>&1 | FileCheck %s --check-prefix=DUPLICATE

include "moeq/Passes/PipelineBase.td"

def BitsOption : Option<"weightBits", "bits", "unsigned", "4", "weight \"bits\"">;
def OutputOption : Option<"outputPath", "output", "std::string", "", "where">;
def UnsharedOption : Option<"other", "other", "bool", "false", "only the pass's">;

def Quantize : Pass<"test-quantize"> {
  let options = [BitsOption, OutputOption, UnsharedOption];
}
def Unrelated : Pass<"test-unrelated"> {
  let options = [UnsharedOption];
}

def Renamed : PipelineOption<OutputOption, "weights", ""> { let cppName = "weightsOutput"; }
def TestPipeline : PassPipeline<"test-pipeline", "TestPipelineOptions"> {
  let options = [PipelineOption<BitsOption, "bits", "bits", "8">, Renamed
#ifdef DUPLICATE
                 , PipelineOption<BitsOption, "more-bits">
#endif
                ];
}

// CHECK-LABEL: #ifdef GEN_PIPELINE_OPTIONS_DECL
// CHECK: struct TestPipelineOptions : public ::mlir::PassPipelineOptions<TestPipelineOptions> {
// CHECK-NEXT:   Option<unsigned> weightBits{*this, "bits", ::llvm::cl::desc("weight \"bits\""), ::llvm::cl::init(8)};
// CHECK-NEXT:   Option<std::string> weightsOutput{*this, "weights", ::llvm::cl::desc("where")};
// CHECK-NEXT: };

// Only the passes that take options of the pipeline get a copy.
// CHECK-LABEL: #ifdef GEN_PIPELINE_PASS_OPTIONS
// CHECK: inline void copyPipelineOptions(const TestPipelineOptions &from, QuantizeOptions &to) {
// CHECK-NEXT:   to.weightBits = from.weightBits;
// CHECK-NEXT:   to.outputPath = from.weightsOutput;
// CHECK-NEXT: }
// CHECK-NOT: UnrelatedOptions

// A flag for every option with a flag name; `weights` is set by the tool.
// CHECK-LABEL: #ifdef GEN_TOOL_FLAGS_TestPipelineOptions
// CHECK: static ::llvm::cl::opt<unsigned> weightBits("bits", ::llvm::cl::desc("weight \"bits\""), ::llvm::cl::init(8), ::llvm::cl::cat(MOEQ_PIPELINE_FLAGS_CATEGORY));
// CHECK-NOT: cl::opt<std::string> weightsOutput
// CHECK: static void copyFlagsTo(TestPipelineOptions &to) {
// CHECK-NEXT:   to.weightBits = flags::weightBits.getValue();
// CHECK-NEXT: }

// DUPLICATE: error: two options named 'weightBits' in C++
