//===- PipelineBase.td - pass pipelines in TableGen -------*- tablegen -*-===//
//
// The records tools/moeq-tblgen -gen-pipeline-options reads (Pipelines.td
// uses them; test/TableGen/pipeline-options.td tests the backend on them).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_PIPELINEBASE_TD
#define MOEQ_PASSES_PIPELINEBASE_TD

include "mlir/Pass/PassBase.td"

// `opt` as an option of a pipeline: `arg` in the pipeline's options, `flag`
// as a flag of the tool that runs it ("": set by the tool, not a flag).
class PipelineOption<Option opt, string arg = opt.argument, string flagName = arg,
                     string default = opt.defaultValue, string desc = opt.description> {
  Option option = opt;
  string cppName = opt.cppName;
  string argument = arg;
  string flag = flagName;
  string defaultValue = default;
  string description = desc;
}

// A registered pass pipeline; `optionsClass` names its generated options
// struct.
class PassPipeline<string arg, string optionsClassName> {
  string argument = arg;
  string optionsClass = optionsClassName;
  list<PipelineOption> options = [];
}

#endif // MOEQ_PASSES_PIPELINEBASE_TD
