#!/bin/sh
# The ablation's commands, in order of priority (each resumes: runs already in results.csv are skipped).
# Run from the repository root. The SGD baseline's grid (its tuned rate per task) first; then, on the
# unseen returns series and gauss1d, the candidates at SGD's tuned rate and base rates 0.1, 1, 10, the
# game-aware rules, the divergence check at 1e-3 and 100, the one-factor variants of sgd+min; then the
# recommended setting (sgd+min-every20, now sgd+discrete) on the mixtures and sp500, the game rules
# again, the other candidates on the mixtures and sp500; Adam; the costlier factor variants.
# (The first game runs, renamed sgd+game@9708823 and sgd+game-min@9708823 in results.csv, used the
# first version of the game rule; the later ones its corrected coupling, commit 0e0fdc3.)
set -e
A="nice -n 5 env PYTHONPATH=. python results/controller-ablation/ablate.py"
$A sgd-base
$A core game divsweep divsweep-rec factors
$A others-rec game rec-more others others-more
$A adam-base adam-ctl factors-more game-more
