"""Recall@k, mAP and latency measurement over a queries file."""
