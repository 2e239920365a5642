// mqtrain: train and evaluate (quantized) ResNets. The command line is tools/cli/mqtrain_cli.cpp.
#include "tools/cli/mqtrain_cli.h"

int main(int argc, char** argv) { return mq::tools::mqtrain_main(argc, argv); }
