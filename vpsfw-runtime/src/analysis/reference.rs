//! The analysis as it was before rules were indexed: each rule compared with every
//! earlier line, each walk through every line of the chain. Slow (quadratic) and plain;
//! the randomized tests hold the indexed analysis to the same findings, byte for byte.

use super::{
    carve, classes, covered, decides, line_cube, walk_lines, written, Chains, Class, Cube, Ifaces,
    Walk, MAX_PIECES,
};
use crate::model::{Policy, Rule};
use crate::ruleset::chain_lines;
use crate::value::{Chain, Family};

/// Per rule: whether it is dead in every family it exists in, and the earlier rules
/// that decide its packets.
pub(super) fn dead_rules(policy: &Policy) -> Vec<(usize, Vec<usize>)> {
    // rule index -> (families checked, families dead, deciders)
    let n = policy.rules().len();
    let mut live = vec![false; n];
    let mut checked = vec![false; n];
    let mut deciders: Vec<Vec<usize>> = vec![Vec::new(); n];
    for family in Family::ALL {
        for chain in Chain::ALL {
            let lines = chain_lines(policy, family, chain);
            let rules: Vec<&Rule> = lines.iter().map(|l| l.rule).collect();
            let ifaces = Ifaces::new(&rules);
            let cubes: Vec<Vec<(Class, Cube)>> = lines
                .iter()
                .map(|l| {
                    classes()
                        .into_iter()
                        .filter_map(|c| line_cube(l, c, &ifaces).map(|cube| (c, cube)))
                        .collect()
                })
                .collect();
            for (i, line) in lines.iter().enumerate() {
                if !written(line.rule) {
                    continue;
                }
                checked[line.index] = true;
                let mut who = Vec::new();
                let mut dead = true;
                'classes: for (class, cube) in &cubes[i] {
                    let mut rest = vec![cube.clone()];
                    // Every earlier deciding line, in chain order.
                    for j in (0..i).filter(|j| decides(&lines[*j])) {
                        let earlier = &lines[j];
                        for (c2, e) in &cubes[j] {
                            if c2 != class {
                                continue;
                            }
                            if !carve(&mut rest, e) {
                                continue;
                            }
                            if !who.contains(&earlier.index) {
                                who.push(earlier.index);
                            }
                            if rest.is_empty() {
                                continue 'classes;
                            }
                            if rest.len() > MAX_PIECES {
                                dead = false;
                                break 'classes;
                            }
                        }
                    }
                    dead = false;
                    break;
                }
                if dead {
                    // Name only the rules needed: drop each decider the others can do
                    // without (the rule alone when one alone decides everything).
                    let pos = |w: usize| lines[..i].iter().position(|l| l.index == w && decides(l));
                    let mut keep: Vec<usize> = who.clone();
                    for w in who.iter().rev() {
                        let without: Vec<&Vec<(Class, Cube)>> = keep
                            .iter()
                            .filter(|k| *k != w)
                            .filter_map(|k| pos(*k).map(|j| &cubes[j]))
                            .collect();
                        if covered(&cubes[i], &without) {
                            keep.retain(|k| k != w);
                        }
                    }
                    who = keep;
                    for w in who {
                        if !deciders[line.index].contains(&w) {
                            deciders[line.index].push(w);
                        }
                    }
                } else {
                    live[line.index] = true;
                }
            }
        }
    }
    (0..n)
        .filter(|i| checked[*i] && !live[*i])
        .map(|i| (i, std::mem::take(&mut deciders[i])))
        .collect()
}

pub(super) fn walk(
    policy: &Policy,
    chains: &Chains<'_>,
    family: Family,
    chain: Chain,
    start: Cube,
    class: Class,
) -> Walk {
    let lines = chains.get(family, chain);
    walk_lines(policy, &chains.ifaces, chain, lines.iter(), start, class)
}
