//===- moeq-tblgen.cpp - moeq's TableGen backends -------------------------===//
//
// -gen-pipeline-options: the options of moeq's pass pipelines
// (include/moeq/Passes/Pipelines.td) from the pass options they forward
// (include/moeq/Passes/Passes.td), so that every option is declared once:
//
//   GEN_PIPELINE_OPTIONS_DECL  a PassPipelineOptions struct per pipeline;
//   GEN_PIPELINE_PASS_OPTIONS  per pass sharing option records with a
//                              pipeline, `copyPipelineOptions(from, to)`
//                              filling the pass's options struct;
//   GEN_TOOL_FLAGS_<options>   a pipeline's options as llvm::cl::opt flags
//                              of a tool (moeq-compile: the compile
//                              pipeline's), in the category
//                              MOEQ_PIPELINE_FLAGS_CATEGORY, and
//                              `copyFlagsTo(options)`.
//
// mlir-tblgen's -gen-pass-decls emits the passes' own option structs from
// the same records; this backend emits what it has no generator for.
//
//===----------------------------------------------------------------------===//
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TableGen/Error.h"
#include "llvm/TableGen/Main.h"
#include "llvm/TableGen/Record.h"
#include "llvm/TableGen/TableGenBackend.h"

using namespace llvm;

namespace {
/// One option of a pipeline: the pass option record it is, and the names
/// it has in the pipeline and as a tool flag ("" = not a flag).
struct PipelineOption {
  const Record *option;
  StringRef cppName, argument, flag, defaultValue, description;

  explicit PipelineOption(const Record *def)
      : option(def->getValueAsDef("option")), cppName(def->getValueAsString("cppName")),
        argument(def->getValueAsString("argument")), flag(def->getValueAsString("flag")),
        defaultValue(def->getValueAsString("defaultValue")),
        description(def->getValueAsString("description")) {}
  StringRef type() const { return option->getValueAsString("type"); }
  StringRef additionalFlags() const { return option->getValueAsString("additionalOptFlags"); }
};

std::vector<PipelineOption> optionsOf(const Record *pipeline) {
  std::vector<PipelineOption> options;
  for (const Record *def : pipeline->getValueAsListOfDefs("options"))
    options.emplace_back(def);
  return options;
}

void emitQuoted(raw_ostream &os, StringRef text) {
  os << '"';
  os.write_escaped(text);
  os << '"';
}

/// `"arg", ::llvm::cl::desc("..."), ::llvm::cl::init(...), <flags>`: what
/// both a pass-pipeline Option and a tool's cl::opt are constructed from.
void emitOptionArguments(raw_ostream &os, StringRef argument, const PipelineOption &option) {
  emitQuoted(os, argument);
  os << ", ::llvm::cl::desc(";
  emitQuoted(os, option.description);
  os << ")";
  if (!option.defaultValue.empty())
    os << ", ::llvm::cl::init(" << option.defaultValue << ")";
  if (!option.additionalFlags().empty())
    os << ", " << option.additionalFlags();
}

void checkUnique(const Record *pipeline, const std::vector<PipelineOption> &options) {
  StringSet<> cppNames, arguments, flags;
  for (const PipelineOption &option : options) {
    if (!cppNames.insert(option.cppName).second)
      PrintFatalError(pipeline, "two options named '" + option.cppName + "' in C++");
    if (!arguments.insert(option.argument).second)
      PrintFatalError(pipeline, "two options with the argument '" + option.argument + "'");
    if (!option.flag.empty() && !flags.insert(option.flag).second)
      PrintFatalError(pipeline, "two options with the flag '" + option.flag + "'");
  }
}

void emitOptionsStruct(raw_ostream &os, const Record *pipeline) {
  std::vector<PipelineOption> options = optionsOf(pipeline);
  checkUnique(pipeline, options);
  StringRef name = pipeline->getValueAsString("optionsClass");
  os << "/// The options of the `" << pipeline->getValueAsString("argument") << "` pipeline.\n";
  os << "struct " << name << " : public ::mlir::PassPipelineOptions<" << name << "> {\n";
  for (const PipelineOption &option : options) {
    os << "  Option<" << option.type() << "> " << option.cppName << "{*this, ";
    emitOptionArguments(os, option.argument, option);
    os << "};\n";
  }
  os << "};\n\n";
}

/// copyPipelineOptions(pipeline options, pass options) for every pass that
/// takes options of the pipeline.
void emitPassOptionCopies(raw_ostream &os, const Record *pipeline,
                          ArrayRef<const Record *> passes) {
  std::vector<PipelineOption> options = optionsOf(pipeline);
  StringRef name = pipeline->getValueAsString("optionsClass");
  for (const Record *pass : passes) {
    std::vector<std::pair<StringRef, StringRef>> copies; // pass cppName, pipeline cppName
    for (const Record *passOption : pass->getValueAsListOfDefs("options"))
      for (const PipelineOption &option : options)
        if (option.option == passOption)
          copies.emplace_back(passOption->getValueAsString("cppName"), option.cppName);
    if (copies.empty())
      continue;
    os << "/// The options of `" << pass->getValueAsString("argument")
       << "` that the pipeline forwards.\n";
    os << "inline void copyPipelineOptions(const " << name << " &from, " << pass->getName()
       << "Options &to) {\n";
    for (auto [passName, pipelineName] : copies)
      os << "  to." << passName << " = from." << pipelineName << ";\n";
    os << "}\n\n";
  }
}

void emitToolFlags(raw_ostream &os, const Record *pipeline) {
  std::vector<PipelineOption> options = optionsOf(pipeline);
  StringRef name = pipeline->getValueAsString("optionsClass");
  os << "namespace flags {\n";
  for (const PipelineOption &option : options) {
    if (option.flag.empty())
      continue;
    os << "static ::llvm::cl::opt<" << option.type() << "> " << option.cppName << "(";
    emitOptionArguments(os, option.flag, option);
    os << ", ::llvm::cl::cat(MOEQ_PIPELINE_FLAGS_CATEGORY));\n";
  }
  os << "} // namespace flags\n\n";
  os << "/// The pipeline options the flags give (the others keep their defaults).\n";
  os << "[[maybe_unused]] static void copyFlagsTo(" << name << " &to) {\n";
  for (const PipelineOption &option : options)
    if (!option.flag.empty())
      os << "  to." << option.cppName << " = flags::" << option.cppName << ".getValue();\n";
  os << "}\n\n";
}

void emitPipelineOptions(const RecordKeeper &records, raw_ostream &os) {
  emitSourceFileHeader("moeq pipeline options", os, records);
  ArrayRef<const Record *> pipelines = records.getAllDerivedDefinitions("PassPipeline");
  ArrayRef<const Record *> passes = records.getAllDerivedDefinitions("PassBase");

  os << "#ifdef GEN_PIPELINE_OPTIONS_DECL\n#undef GEN_PIPELINE_OPTIONS_DECL\n\n";
  for (const Record *pipeline : pipelines)
    emitOptionsStruct(os, pipeline);
  os << "#endif // GEN_PIPELINE_OPTIONS_DECL\n\n";

  os << "#ifdef GEN_PIPELINE_PASS_OPTIONS\n#undef GEN_PIPELINE_PASS_OPTIONS\n\n";
  for (const Record *pipeline : pipelines)
    emitPassOptionCopies(os, pipeline, passes);
  os << "#endif // GEN_PIPELINE_PASS_OPTIONS\n\n";

  // A tool takes the flags of one pipeline: GEN_TOOL_FLAGS_<options class>.
  for (const Record *pipeline : pipelines) {
    std::string guard = ("GEN_TOOL_FLAGS_" + pipeline->getValueAsString("optionsClass")).str();
    os << "#ifdef " << guard << "\n#undef " << guard << "\n\n";
    emitToolFlags(os, pipeline);
    os << "#endif // " << guard << "\n\n";
  }
}

TableGen::Emitter::Opt generatePipelineOptions(
    "gen-pipeline-options", emitPipelineOptions,
    "pipeline options, the pass options they fill and a tool's flags");
} // namespace

int main(int argc, char **argv) {
  InitLLVM guard(argc, argv);
  cl::ParseCommandLineOptions(argc, argv);
  return TableGenMain(argv[0], TableGenMainFn(nullptr));
}
