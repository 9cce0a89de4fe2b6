//===- Relaxation.cpp - DDQ's gradient-based bit allocation ---------------===//
//
// DDQ learns bit-widths by gradient descent through a relaxation of the
// discrete choice. Here the same idea solves MxMoE's allocation problem:
// softmax probabilities over each block's options, expected loss, time
// and bits, an augmented Lagrangian for the budget, Adam, and a temperature
// that anneals the probabilities towards one option per block. The exact
// solver (Allocation.cpp) is the reference it is measured against.
//
//===----------------------------------------------------------------------===//
#include "moeq/Allocation/Allocation.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir::moeq::alloc;

namespace {

/// Adam on a flat parameter vector.
struct Adam {
  explicit Adam(size_t size, double rate) : m(size), v(size), rate(rate) {}
  void step(std::vector<double> &params, const std::vector<double> &grad) {
    ++t;
    double c1 = 1 - std::pow(beta1, t), c2 = 1 - std::pow(beta2, t);
    for (size_t i = 0; i < params.size(); ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * grad[i];
      v[i] = beta2 * v[i] + (1 - beta2) * grad[i] * grad[i];
      params[i] -= rate * (m[i] / c1) / (std::sqrt(v[i] / c2) + 1e-12);
    }
  }
  std::vector<double> m, v;
  double rate, beta1 = 0.9, beta2 = 0.999;
  int t = 0;
};

/// The relaxed problem: logits per (block, option), flattened.
class Relaxed {
public:
  explicit Relaxed(const Problem &problem) : problem(problem) {
    for (const Block &block : problem.blocks) {
      first.push_back(logits.size());
      logits.resize(logits.size() + block.options.size(), 0.0);
    }
    probs.resize(logits.size());
    grad.resize(logits.size());
  }

  /// Softmax of every block at `temperature`; returns the expected totals.
  void forward(double temperature, double &loss, double &seconds, double &bits) {
    loss = seconds = bits = 0;
    for (size_t b = 0; b < problem.blocks.size(); ++b) {
      const std::vector<Option> &options = problem.blocks[b].options;
      double top = -std::numeric_limits<double>::infinity(), sum = 0;
      for (size_t o = 0; o < options.size(); ++o)
        top = std::max(top, logits[first[b] + o] / temperature);
      for (size_t o = 0; o < options.size(); ++o)
        sum += probs[first[b] + o] = std::exp(logits[first[b] + o] / temperature - top);
      for (size_t o = 0; o < options.size(); ++o) {
        double p = probs[first[b] + o] /= sum;
        loss += p * options[o].loss;
        seconds += p * options[o].seconds;
        bits += p * options[o].bits;
      }
    }
  }

  /// Gradient with respect to the logits of sum_{b,o} p_bo g_bo, where
  /// g_bo = dLoss * loss + dTime * seconds + dBits * bits of the option.
  void backward(double temperature, double dLoss, double dTime, double dBits) {
    for (size_t b = 0; b < problem.blocks.size(); ++b) {
      const std::vector<Option> &options = problem.blocks[b].options;
      double mean = 0;
      for (size_t o = 0; o < options.size(); ++o) {
        const Option &opt = options[o];
        grad[first[b] + o] = dLoss * opt.loss + dTime * opt.seconds + dBits * opt.bits;
        mean += probs[first[b] + o] * grad[first[b] + o];
      }
      for (size_t o = 0; o < options.size(); ++o)
        grad[first[b] + o] = probs[first[b] + o] * (grad[first[b] + o] - mean) / temperature;
    }
  }

  std::vector<int> mostProbable() const {
    std::vector<int> choice;
    for (size_t b = 0; b < problem.blocks.size(); ++b) {
      size_t count = problem.blocks[b].options.size();
      choice.push_back(int(std::max_element(probs.begin() + first[b],
                                            probs.begin() + first[b] + count) -
                           (probs.begin() + first[b])));
    }
    return choice;
  }

  const Problem &problem;
  std::vector<size_t> first;
  std::vector<double> logits, probs, grad;
};

/// Totals of a discrete choice, updated move by move.
struct Totals {
  double loss = 0, seconds = 0, bits = 0;
  void move(const Option &from, const Option &to) {
    loss += to.loss - from.loss;
    seconds += to.seconds - from.seconds;
    bits += to.bits - from.bits;
  }
};

/// Greedy repair to the budget, then first-improvement local search over
/// single-block moves that stay within it.
void repairAndPolish(const Problem &problem, std::vector<int> &choice) {
  Totals totals;
  for (size_t b = 0; b < choice.size(); ++b)
    totals.move(Option(), problem.blocks[b].options[choice[b]]);
  auto objectiveAfter = [&](size_t b, int o) {
    const Option &from = problem.blocks[b].options[choice[b]], &to = problem.blocks[b].options[o];
    return objective(problem.r, totals.loss + to.loss - from.loss,
                     totals.seconds + to.seconds - from.seconds);
  };
  double budget = problem.budgetBits * (1 + 1e-12);
  while (totals.bits > budget) {
    double current = objective(problem.r, totals.loss, totals.seconds);
    double bestRatio = std::numeric_limits<double>::infinity();
    size_t bestBlock = 0;
    int bestOption = -1;
    for (size_t b = 0; b < choice.size(); ++b)
      for (int o = 0; o < int(problem.blocks[b].options.size()); ++o) {
        double saved = problem.blocks[b].options[choice[b]].bits - problem.blocks[b].options[o].bits;
        if (saved <= 0)
          continue;
        double ratio = (objectiveAfter(b, o) - current) / saved;
        if (ratio < bestRatio) {
          bestRatio = ratio;
          bestBlock = b;
          bestOption = o;
        }
      }
    if (bestOption < 0)
      break; // (validateProblem guarantees a feasible choice exists)
    totals.move(problem.blocks[bestBlock].options[choice[bestBlock]],
                problem.blocks[bestBlock].options[bestOption]);
    choice[bestBlock] = bestOption;
  }
  // Local search: the best single-block move, else the best pair of moves
  // (one block up, another down: what a knapsack needs to trade bits),
  // while either lowers the objective within the budget.
  struct Move {
    size_t block;
    int option;
  };
  auto tolerance = [](double v) { return 1e-12 * std::max(1.0, std::abs(v)); };
  for (int round = 0; round < 10000; ++round) {
    double current = objective(problem.r, totals.loss, totals.seconds);
    double bestValue = current - tolerance(current);
    std::vector<Move> best;
    std::vector<Move> moves;
    for (size_t b = 0; b < choice.size(); ++b)
      for (int o = 0; o < int(problem.blocks[b].options.size()); ++o)
        if (o != choice[b])
          moves.push_back({b, o});
    auto delta = [&](const Move &m) {
      const Option &from = problem.blocks[m.block].options[choice[m.block]];
      const Option &to = problem.blocks[m.block].options[m.option];
      return Option{to.loss - from.loss, to.seconds - from.seconds, to.bits - from.bits};
    };
    for (const Move &m : moves) {
      Option d = delta(m);
      if (totals.bits + d.bits > budget)
        continue;
      double value = objective(problem.r, totals.loss + d.loss, totals.seconds + d.seconds);
      if (value < bestValue) {
        bestValue = value;
        best = {m};
      }
    }
    if (best.empty())
      for (size_t i = 0; i < moves.size(); ++i) {
        Option di = delta(moves[i]);
        for (size_t j = i + 1; j < moves.size(); ++j) {
          if (moves[j].block == moves[i].block)
            continue;
          Option dj = delta(moves[j]);
          if (totals.bits + di.bits + dj.bits > budget)
            continue;
          double value = objective(problem.r, totals.loss + di.loss + dj.loss,
                                   totals.seconds + di.seconds + dj.seconds);
          if (value < bestValue) {
            bestValue = value;
            best = {moves[i], moves[j]};
          }
        }
      }
    if (best.empty())
      break;
    for (const Move &m : best) {
      totals.move(problem.blocks[m.block].options[choice[m.block]],
                  problem.blocks[m.block].options[m.option]);
      choice[m.block] = m.option;
    }
  }
}

} // namespace

llvm::Expected<Solution> mlir::moeq::alloc::solveByRelaxation(const Problem &problem,
                                                              const RelaxationOptions &options) {
  if (llvm::Error err = validateProblem(problem))
    return std::move(err);
  Relaxed relaxed(problem);
  Adam adam(relaxed.logits.size(), options.learningRate);
  double lambda = 0, rho = 10;
  int iterations = std::max(options.iterations, 1);
  constexpr double floor = 1e-300;
  for (int it = 0; it < iterations; ++it) {
    double temperature =
        options.startTemperature *
        std::pow(options.endTemperature / options.startTemperature, double(it) / iterations);
    double loss, seconds, bits;
    relaxed.forward(temperature, loss, seconds, bits);
    double excess = bits / problem.budgetBits - 1;
    double dBits = (lambda + rho * std::max(excess, 0.0)) / problem.budgetBits;
    relaxed.backward(temperature, problem.r / std::max(loss, floor),
                     (1 - problem.r) / std::max(seconds, floor), dBits);
    adam.step(relaxed.logits, relaxed.grad);
    if (it % 50 == 49)
      lambda = std::max(0.0, lambda + rho * excess);
  }
  double loss, seconds, bits;
  relaxed.forward(options.endTemperature, loss, seconds, bits);
  Solution s;
  s.choice = relaxed.mostProbable();
  repairAndPolish(problem, s.choice);
  evaluateChoice(problem, s);
  s.lowerBound = -std::numeric_limits<double>::infinity();
  return s;
}
