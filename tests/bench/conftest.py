"""The benchmark harness (bench/) is a package of this project, installed with it by `make`."""
