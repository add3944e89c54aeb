"""Classical baselines with the scikit-learn estimator API, computed with torch on any device."""
