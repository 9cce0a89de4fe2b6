//===- Allocation.cpp - exact mixed-precision bit allocation --------------===//
#include "moeq/Allocation/Allocation.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <tuple>

using namespace mlir::moeq::alloc;
using llvm::Error;
using llvm::Expected;

namespace {

Error failure(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// A point counts as below a hull edge when its weighted sum is smaller by
/// more than this relative amount (GLPK's objective tolerance is 1e-7).
constexpr double kBelowLine = 1e-6;

/// Indices of the options of one block that no other option dominates
/// (no worse in loss, time and bits, better in one). Only these can be
/// optimal: the objective grows with L and T and the budget with bits.
std::vector<int> undominated(const Block &block) {
  std::vector<int> kept;
  const auto &opts = block.options;
  for (int i = 0, e = opts.size(); i < e; ++i) {
    bool dominated = false;
    for (int j = 0; j < e && !dominated; ++j) {
      if (i == j)
        continue;
      const Option &a = opts[j], &b = opts[i];
      bool noWorse = a.loss <= b.loss && a.seconds <= b.seconds && a.bits <= b.bits;
      bool better = a.loss < b.loss || a.seconds < b.seconds || a.bits < b.bits;
      // Identical options: keep the first.
      dominated = noWorse && (better || j < i);
    }
    if (!dominated)
      kept.push_back(i);
  }
  return kept;
}

struct GlpkDeleter {
  void operator()(glp_prob *p) const { glp_delete_prob(p); }
};

/// min sum_b cost(choice_b) s.t. sum_b bits(choice_b) <= budget, one
/// option per block (a multiple-choice knapsack), with cost = wLoss * loss
/// / lossScale + wTime * seconds / timeScale. Two exact engines: dynamic
/// programming over the budget in units of the greatest common divisor of
/// all option sizes (storage sizes are whole bits: weights x bits plus
/// 16-bit scales), and GLPK's branch-and-bound MILP, used when the sizes
/// are not whole or the table would be too large.
class WeightedKnapsack {
public:
  WeightedKnapsack(const Problem &problem, Engine engine) : problem(problem) {
    for (const Block &block : problem.blocks)
      kept.push_back(undominated(block));
    for (const Block &block : problem.blocks)
      for (const Option &o : block.options) {
        lossScale = std::max(lossScale, o.loss);
        timeScale = std::max(timeScale, o.seconds);
      }
    lossScale = lossScale > 0 ? lossScale : 1;
    timeScale = timeScale > 0 ? timeScale : 1;
    useTable = engine != Engine::MILP && prepareTable();
    if (engine == Engine::DynamicProgramming && !useTable)
      tableError = "the dynamic program needs whole-bit option sizes and at most 4e8 table cells";
  }

  Engine engine() const { return useTable ? Engine::DynamicProgramming : Engine::MILP; }

  /// Least cost subject to the budget; nullopt when infeasible.
  Expected<std::optional<std::vector<int>>> solve(double wLoss, double wTime) {
    if (!tableError.empty())
      return failure(tableError);
    return useTable ? solveTable(wLoss, wTime) : solveMilp(wLoss, wTime);
  }

private:
  /// Sizes in units of their greatest common divisor, if all are whole
  /// bits and the table fits.
  bool prepareTable() {
    auto whole = [](double v) { return std::abs(v - std::round(v)) <= 1e-6 * std::max(1.0, v); };
    int64_t unit = 0;
    for (const Block &block : problem.blocks)
      for (const Option &o : block.options) {
        if (!whole(o.bits))
          return false;
        unit = std::gcd(unit, int64_t(std::llround(o.bits)));
      }
    unit = unit ? unit : 1;
    cells = int64_t(std::floor(problem.budgetBits / unit + 1e-9)) + 1;
    if (double(cells) * problem.blocks.size() > 4e8)
      return false;
    units.clear();
    for (const Block &block : problem.blocks) {
      std::vector<int64_t> sizes;
      for (const Option &o : block.options)
        sizes.push_back(std::llround(o.bits) / unit);
      units.push_back(std::move(sizes));
    }
    return true;
  }

  /// best[c] = least cost of the blocks so far within c units; the last
  /// block's option per (block, c) is kept to read the choice back.
  Expected<std::optional<std::vector<int>>> solveTable(double wLoss, double wTime) {
    ++solves;
    constexpr double inf = std::numeric_limits<double>::infinity();
    int blocks = problem.blocks.size();
    std::vector<double> best(cells, 0.0), next(cells);
    std::vector<uint8_t> pick(size_t(blocks) * cells);
    for (int b = 0; b < blocks; ++b) {
      std::fill(next.begin(), next.end(), inf);
      uint8_t *row = pick.data() + size_t(b) * cells;
      for (int o : kept[b]) {
        const Option &opt = problem.blocks[b].options[o];
        double cost = wLoss * opt.loss / lossScale + wTime * opt.seconds / timeScale;
        int64_t w = units[b][o];
        for (int64_t c = w; c < cells; ++c) {
          double v = best[c - w] + cost;
          if (v < next[c]) {
            next[c] = v;
            row[c] = uint8_t(o);
          }
        }
      }
      best.swap(next);
    }
    if (!std::isfinite(best[cells - 1]))
      return std::nullopt;
    std::vector<int> choice(blocks);
    int64_t c = cells - 1;
    for (int b = blocks - 1; b >= 0; --b) {
      choice[b] = pick[size_t(b) * cells + c];
      c -= units[b][choice[b]];
    }
    return choice;
  }

  Expected<std::optional<std::vector<int>>> solveMilp(double wLoss, double wTime) {
    ++solves;
    glp_term_out(GLP_OFF);
    std::unique_ptr<glp_prob, GlpkDeleter> lp(glp_create_prob());
    glp_prob *p = lp.get();
    glp_set_obj_dir(p, GLP_MIN);
    int blocks = problem.blocks.size();
    // Rows: one per block (pick exactly one), then the budget.
    glp_add_rows(p, blocks + 1);
    for (int b = 0; b < blocks; ++b)
      glp_set_row_bnds(p, b + 1, GLP_FX, 1.0, 1.0);
    int budgetRow = blocks + 1;
    glp_set_row_bnds(p, budgetRow, GLP_UP, 0.0, 1.0);

    std::vector<int> rowIdx{0};
    std::vector<double> values{0};
    std::vector<std::pair<int, int>> columns; // (block, option)
    for (int b = 0; b < blocks; ++b)
      for (int o : kept[b])
        columns.push_back({b, o});
    glp_add_cols(p, columns.size());
    for (int c = 0, e = columns.size(); c < e; ++c) {
      const Option &opt = problem.blocks[columns[c].first].options[columns[c].second];
      int col = c + 1;
      glp_set_col_kind(p, col, GLP_BV);
      glp_set_obj_coef(p, col, wLoss * opt.loss / lossScale + wTime * opt.seconds / timeScale);
      int rows[3] = {0, columns[c].first + 1, budgetRow};
      double vals[3] = {0, 1.0, opt.bits / problem.budgetBits};
      glp_set_mat_col(p, col, 2, rows, vals);
    }
    glp_iocp params;
    glp_init_iocp(&params);
    params.msg_lev = GLP_MSG_OFF;
    params.presolve = GLP_ON;
    params.mip_gap = 0.0; // prove optimality, no early stop
    params.mir_cuts = GLP_ON;
    params.cov_cuts = GLP_ON;
    int rc = glp_intopt(p, &params);
    if (rc == GLP_ENOPFS || rc == GLP_ENODFS)
      return std::nullopt;
    if (rc != 0)
      return failure(llvm::formatv("GLPK MILP failed (glp_intopt returned {0})", rc));
    int status = glp_mip_status(p);
    if (status == GLP_NOFEAS)
      return std::nullopt;
    if (status != GLP_OPT)
      return failure(llvm::formatv("GLPK did not prove optimality (status {0})", status));
    std::vector<int> choice(blocks, -1);
    for (int c = 0, e = columns.size(); c < e; ++c)
      if (glp_mip_col_val(p, c + 1) > 0.5)
        choice[columns[c].first] = columns[c].second;
    return choice;
  }

public:
  int solves = 0;
  double lossScale = 0, timeScale = 0;

private:
  const Problem &problem;
  std::vector<std::vector<int>> kept;
  bool useTable = false;
  std::string tableError;
  int64_t cells = 0;
  std::vector<std::vector<int64_t>> units;
};

Solution evaluated(const Problem &problem, std::vector<int> choice) {
  Solution s;
  s.choice = std::move(choice);
  evaluateChoice(problem, s);
  return s;
}

} // namespace

void mlir::moeq::alloc::evaluateChoice(const Problem &problem, Solution &s) {
  s.loss = s.seconds = s.bits = 0;
  for (size_t b = 0; b < problem.blocks.size(); ++b) {
    const Option &o = problem.blocks[b].options[s.choice[b]];
    s.loss += o.loss;
    s.seconds += o.seconds;
    s.bits += o.bits;
  }
  s.objective = objective(problem.r, s.loss, s.seconds);
}

Error mlir::moeq::alloc::validateProblem(const Problem &problem) {
  if (!(problem.r >= 0 && problem.r <= 1))
    return failure(llvm::formatv("r must be in [0, 1], got {0}", problem.r));
  if (!(problem.budgetBits > 0))
    return failure("the memory budget must be positive");
  double leastBits = 0;
  for (size_t b = 0; b < problem.blocks.size(); ++b) {
    const Block &block = problem.blocks[b];
    if (block.options.empty())
      return failure(llvm::formatv("block {0} has no candidate option", b));
    if (block.options.size() > 255)
      return failure(llvm::formatv("block {0} has more than 255 options", b));
    double least = std::numeric_limits<double>::infinity();
    for (const Option &o : block.options) {
      if (!(o.loss >= 0) || !(o.seconds >= 0) || !(o.bits >= 0) || !std::isfinite(o.loss) ||
          !std::isfinite(o.seconds) || !std::isfinite(o.bits))
        return failure(llvm::formatv("block {0} has an option with a negative or "
                                     "non-finite loss, time or size",
                                     b));
      least = std::min(least, o.bits);
    }
    leastBits += least;
  }
  if (leastBits > problem.budgetBits * (1 + 1e-12))
    return failure(llvm::formatv("the memory budget of {0} bits cannot be met: the "
                                 "smallest candidate of every block needs {1} bits",
                                 problem.budgetBits, leastBits));
  return Error::success();
}

double mlir::moeq::alloc::objective(double r, double loss, double seconds) {
  constexpr double floor = 1e-300;
  return r * std::log(std::max(loss, floor)) + (1 - r) * std::log(std::max(seconds, floor));
}

Expected<Solution> mlir::moeq::alloc::solveAllocation(const Problem &problem,
                                                      const SolveOptions &options) {
  if (Error err = validateProblem(problem))
    return std::move(err);
  WeightedKnapsack milp(problem, options.engine);
  constexpr double inf = std::numeric_limits<double>::infinity();

  // The two ends of the frontier: least loss and least time. They need not
  // be Pareto-optimal (another point may tie on L with less T); the search
  // below stays exact, since its bounds only use L >= least L and T >= least T,
  // and a point that dominates an end lies below the hull edge from it.
  auto endpoint = [&](double wLoss, double wTime) -> Expected<Solution> {
    auto point = milp.solve(wLoss, wTime);
    if (!point)
      return point.takeError();
    if (!*point)
      return failure("the allocation MILP is infeasible although the budget can be met");
    return evaluated(problem, **point);
  };
  auto leastLoss = endpoint(1, 0);
  if (!leastLoss)
    return leastLoss.takeError();
  auto leastTime = endpoint(0, 1);
  if (!leastTime)
    return leastTime.takeError();

  Solution best = leastLoss->objective <= leastTime->objective ? *leastLoss : *leastTime;
  int points = 2;
  std::vector<std::pair<double, double>> frontier = {{leastLoss->loss, leastLoss->seconds},
                                                     {leastTime->loss, leastTime->seconds}};
  // The objective is concave in (L, T), so its least value over the
  // achievable points is at a vertex of their convex hull: a supported
  // point, the optimum of some weighted sum a L + b T. Dichotomic search
  // (Aneja and Nair) finds every such vertex between two known ones A
  // (less loss) and B (less time): weights normal to AB give a point C
  // below the line AB, or prove there is none. All vertices between A and
  // B lie in the triangle A, B, (L_A, T_B), where the objective is at
  // least its value at that corner; a segment whose corner cannot beat the
  // best point found is skipped, which keeps the search small.
  std::vector<std::pair<Solution, Solution>> segments;
  if (leastTime->seconds < leastLoss->seconds && leastLoss->loss < leastTime->loss)
    segments.push_back({*leastLoss, *leastTime});
  double unexplored = inf; // least corner bound of segments given up on
  while (!segments.empty()) {
    auto [a, b] = segments.back();
    segments.pop_back();
    double corner = objective(problem.r, a.loss, b.seconds);
    if (corner >= best.objective)
      continue;
    if (milp.solves >= options.maxSolves) {
      unexplored = std::min(unexplored, corner);
      continue;
    }
    double wLoss = (a.seconds - b.seconds) / milp.timeScale;
    double wTime = (b.loss - a.loss) / milp.lossScale;
    double norm = wLoss + wTime;
    auto point = milp.solve(wLoss / norm, wTime / norm);
    if (!point)
      return point.takeError();
    if (!*point)
      return failure("the allocation MILP became infeasible during the frontier search");
    Solution c = evaluated(problem, **point);
    auto weighted = [&](const Solution &s) {
      return (wLoss * s.loss / milp.lossScale + wTime * s.seconds / milp.timeScale) / norm;
    };
    if (weighted(c) >= weighted(a) - kBelowLine * (std::abs(weighted(a)) + 1e-300))
      continue; // no hull vertex strictly between A and B
    ++points;
    frontier.push_back({c.loss, c.seconds});
    if (c.objective < best.objective)
      best = c;
    segments.push_back({a, c});
    segments.push_back({c, b});
  }
  best.lowerBound = std::min(best.objective, unexplored);
  best.milpSolves = milp.solves;
  best.engine = milp.engine();
  best.frontierPoints = points;
  llvm::sort(frontier, [](const auto &a, const auto &b) {
    return std::tie(a.second, a.first) < std::tie(b.second, b.first);
  });
  frontier.erase(std::unique(frontier.begin(), frontier.end()), frontier.end());
  best.frontier = std::move(frontier);
  return best;
}

Expected<Solution> mlir::moeq::alloc::solveByEnumeration(const Problem &problem) {
  if (Error err = validateProblem(problem))
    return std::move(err);
  double assignments = 1;
  for (const Block &block : problem.blocks)
    assignments *= block.options.size();
  if (assignments > double(1 << 22))
    return failure("too many assignments to enumerate");
  std::vector<int> choice(problem.blocks.size(), 0);
  Solution best;
  best.objective = std::numeric_limits<double>::infinity();
  while (true) {
    Solution s;
    s.choice = choice;
    evaluateChoice(problem, s);
    if (s.bits <= problem.budgetBits && s.objective < best.objective)
      best = s;
    size_t b = 0;
    for (; b < choice.size(); ++b) {
      if (++choice[b] < int(problem.blocks[b].options.size()))
        break;
      choice[b] = 0;
    }
    if (b == choice.size())
      break;
  }
  best.lowerBound = best.objective;
  return best;
}

Problem mlir::moeq::alloc::randomProblem(unsigned seed, int blocks, int schemes, double avgBits,
                                         double r) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> noise(0.5, 2.0);
  std::uniform_int_distribution<int> sizes(1, 4);
  Problem p;
  p.r = r;
  double weights = 0;
  for (int b = 0; b < blocks; ++b) {
    Block block;
    double size = 1024.0 * sizes(gen);
    weights += size;
    for (int s = 0; s < schemes; ++s) {
      double bits = 1.25 + s;
      block.options.push_back({size * std::pow(4.0, -s) * noise(gen),
                               size * bits * 1e-9 * noise(gen) + 1e-6, size * bits});
    }
    p.blocks.push_back(block);
  }
  p.budgetBits = weights * avgBits;
  return p;
}
