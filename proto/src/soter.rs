//! WeChat SOTER's JSON: the signed `resultJSON` and the key's `keyJson`.
