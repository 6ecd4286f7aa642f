"""Trains one scikit-learn classifier on the handwritten-digits dataset that ships inside scikit-learn.

Writes metrics.json in the working directory: model, hyperparameters, test accuracy, sizes and timings.
Run by a Touchstone agent as a real training task: python train.py --model svm --C 10 --gamma 0.001
"""

import argparse
import json
import time

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier


def build(args):
    if args.model == "svm":
        return SVC(C=args.C, gamma=args.gamma)
    if args.model == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=2000))
    if args.model == "knn":
        return KNeighborsClassifier(n_neighbors=args.k)
    if args.model == "forest":
        return RandomForestClassifier(n_estimators=args.trees, random_state=args.seed)
    if args.model == "tree":
        return DecisionTreeClassifier(max_depth=args.depth, random_state=args.seed)
    raise SystemExit(f"unknown model {args.model!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, choices=["svm", "logreg", "knn", "forest", "tree"])
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.001)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
    )
    model = build(args)
    started = time.time()
    model.fit(x_train, y_train)
    fit_seconds = time.time() - started
    accuracy = accuracy_score(y_test, model.predict(x_test))
    metrics = {
        "model": args.model,
        "hyperparameters": {k: v for k, v in vars(args).items() if k != "model"},
        "test_accuracy": round(float(accuracy), 4),
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "fit_seconds": round(fit_seconds, 3),
    }
    with open("metrics.json", "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
