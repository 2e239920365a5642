#pragma once
// One entry point for the tools: a dataset by name.
//   cifar10, cifar100   binary CIFAR files in `dir` (see data/cifar.h; scripts/get-cifar.sh),
//                       by default default_data_dir(name)
//   fashion-mnist       IDX files in `dir` (default /usr/share/datasets/fashion-mnist)
//   synthetic           generated, 3x32x32, 10 classes (train 5000 / test 1000 samples);
//                       "synthetic:N" sets the train size, N of 1..1,000,000 (test: N / 5, at
//                       least 100)
#include <string>
#include <vector>

#include "data/dataset.h"

namespace mq {

enum class Split { train, test };

std::vector<std::string> dataset_names();
// Where a dataset lives when no directory is given (and where scripts/get-cifar.sh puts it when
// given none): $MQ_DATA/<name>, else $XDG_DATA_HOME/mq/<name>, else ~/.local/share/mq/<name>.
std::string default_data_dir(const std::string& name);
// Throws mq::Error listing the known names for an unknown one, or naming the file that is wrong.
Dataset load_dataset(const std::string& name, const std::string& dir, Split split);
// The standard normalization for a dataset name (CIFAR / Fashion-MNIST / synthetic).
Normalization dataset_normalization(const std::string& name);
// Class count by name without loading anything.
int dataset_classes(const std::string& name);

}  // namespace mq
