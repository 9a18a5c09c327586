// scorch classifier: trains the built-in feature extractor for 28x28
// grayscale data (eval/classifier.h) on a labelled dataset such as
// Fashion-MNIST and saves it as a Scorch checkpoint, usable wherever a
// feature extractor is asked for (--extractor, eval.feature_extractor).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "data/sharded_dataset.h"
#include "eval/classifier.h"
#include "train/checkpoint.h"

namespace scorch::cli {

void add_classifier_command(CLI::App& app, std::function<int()>& run) {
  struct Args {
    std::string data, test, out;
    ClassifierTrainOptions train;
    int64_t seed = 42;
    bool json = false, no_progress = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "classifier", "Train the built-in 28x28 grayscale feature extractor (e.g. on Fashion-MNIST)");
  cmd->add_option("--data", args->data, "labelled training dataset directory")->required();
  cmd->add_option("--test", args->test, "labelled test dataset: its accuracy is reported");
  cmd->add_option("--out", args->out, "classifier checkpoint to write (.pt)")->required();
  cmd->add_option("--epochs", args->train.epochs, "passes over the data")->capture_default_str();
  cmd->add_option("--batch", args->train.batch_size, "batch size")->capture_default_str();
  cmd->add_option("--lr", args->train.lr, "Adam learning rate")->capture_default_str();
  cmd->add_option("--limit", args->train.limit, "train on the first N samples (0: all)");
  cmd->add_option("--seed", args->seed, "initialisation and data order")->capture_default_str();
  cmd->add_flag("--no-progress", args->no_progress, "no progress bar");
  cmd->add_flag("--json", args->json, "print the result as one JSON object on stdout");
  cmd->callback([&run, args] {
    run = [args] {
      const ShardedDataset train(args->data);
      std::unique_ptr<ShardedDataset> test;
      if (!args->test.empty()) test = std::make_unique<ShardedDataset>(args->test);
      auto o = args->train;
      o.seed = static_cast<uint64_t>(args->seed);
      o.progress = !args->no_progress;
      nlohmann::json report;
      auto model = train_classifier(train, test.get(), o, &report);
      CheckpointData ckpt;
      for (const auto& p : model->named_parameters()) ckpt.model[p.key()] = p.value().detach();
      ckpt.step = report["epochs"].get<int64_t>();
      ckpt.images_seen = report["samples"].get<int64_t>() * report["epochs"].get<int64_t>();
      ckpt.extra["classifier"] = std::string(kClassifierArchitecture);
      ckpt.extra["classes"] = report["classes"].get<int64_t>();
      ckpt.extra["train_accuracy"] = report["train_accuracy"].get<double>();
      if (!report["test_accuracy"].is_null())
        ckpt.extra["test_accuracy"] = report["test_accuracy"].get<double>();
      ckpt.extra["trained_on"] = args->data;
      save_checkpoint(args->out, ckpt);
      report["out"] = args->out;
      log_info("classifier ", args->out, ": training accuracy ", report["train_accuracy"].dump(),
               ", test accuracy ", report["test_accuracy"].dump(), " (", report["seconds"].dump(),
               " s)");
      if (args->json) std::cout << report.dump() << std::endl;
      return static_cast<int>(kExitOk);
    };
  });
}

}  // namespace scorch::cli
