//! The Monte-Carlo churn simulator (being written).
