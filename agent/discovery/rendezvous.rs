//! Rendezvous (highest-random-weight) hashing: which `k` nodes probe an endpoint directly.
//!
//! Every agent computes the same choice from the same node list, without talking to the
//! others, and adding or removing a node moves only the endpoints that node wins or loses.
//! Per-node work is `endpoints × k / nodes`, flat as the cluster grows.

/// FNV-1a, then a splitmix64 finaliser for a good spread. Stable across builds and machines,
/// unlike `std`'s hasher, so every agent of a DaemonSet agrees.
fn weight(node: &str, item: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain([0xff]).chain(item.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Whether `node` is among the `k` nodes with the highest weight for `item`.
///
/// The scan stops at the `k`th node found above `node`: a node that is not chosen (most of
/// them, in a large cluster) learns it after about `k · ln(nodes)` weights instead of all
/// `nodes`, which keeps target derivation cheap at thousands of nodes.
pub fn chosen(node: &str, item: &str, nodes: &[&str], k: usize) -> bool {
    if k >= nodes.len() {
        return true;
    }
    let mine = (weight(node, item), node);
    let mut higher = 0;
    for other in nodes {
        if (weight(other, item), *other) > mine {
            higher += 1;
            if higher == k {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn each_item_gets_exactly_k_nodes() {
        let names = nodes(50);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for item in 0..200 {
            let item = format!("10.0.{}.{}:8080", item / 250, item % 250);
            let count = refs.iter().filter(|n| chosen(n, &item, &refs, 3)).count();
            assert_eq!(count, 3, "{item}");
        }
    }

    #[test]
    fn work_per_node_stays_flat_as_nodes_are_added() {
        let items: Vec<String> = (0..3000)
            .map(|i| format!("10.1.{}.{}:80", i / 250, i % 250))
            .collect();
        for n in [10, 100, 300] {
            let names = nodes(n);
            let mut load = std::collections::HashMap::new();
            for item in &items {
                let mut by_weight: Vec<(u64, &str)> = names
                    .iter()
                    .map(|n| (weight(n, item), n.as_str()))
                    .collect();
                by_weight.sort_unstable_by(|a, b| b.cmp(a));
                for (_, node) in by_weight.iter().take(3) {
                    *load.entry(*node).or_insert(0usize) += 1;
                }
            }
            let busiest = load.values().copied().max().unwrap_or(0);
            let mean = 3000 * 3 / n;
            assert!(
                busiest <= mean * 2 + 10,
                "{n} nodes: busiest {busiest}, mean {mean}"
            );
        }
    }

    #[test]
    fn adding_a_node_moves_few_items() {
        let items: Vec<String> = (0..1000).map(|i| format!("item-{i}")).collect();
        let before = nodes(20);
        let after = nodes(21);
        let (b, a): (Vec<&str>, Vec<&str>) = (
            before.iter().map(String::as_str).collect(),
            after.iter().map(String::as_str).collect(),
        );
        let moved = items
            .iter()
            .filter(|i| chosen("node-0", i, &b, 3) != chosen("node-0", i, &a, 3))
            .count();
        assert!(moved < 60, "{moved} of 1000 moved for node-0");
    }

    /// The reference definition: rank every node by weight and take the first `k`.
    fn top_k<'a>(item: &str, nodes: &[&'a str], k: usize) -> Vec<&'a str> {
        let mut ranked: Vec<(u64, &str)> = nodes.iter().map(|n| (weight(n, item), *n)).collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        let mut top: Vec<&str> = ranked.into_iter().take(k).map(|(_, n)| n).collect();
        top.sort_unstable();
        top
    }

    #[test]
    fn the_early_exit_chooses_exactly_the_top_k() {
        let names = nodes(40);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        for item in 0..300 {
            let item = format!("10.2.{}.{}:8080", item / 250, item % 250);
            for k in [1, 3, 39] {
                let mut picked: Vec<&str> = refs
                    .iter()
                    .copied()
                    .filter(|n| chosen(n, &item, &refs, k))
                    .collect();
                picked.sort_unstable();
                assert_eq!(picked, top_k(&item, &refs, k), "{item}, k={k}");
            }
        }
    }

    #[test]
    fn fewer_nodes_than_k_means_everyone_probes() {
        assert!(chosen("a", "x", &["a", "b"], 3));
    }
}
