//! A small deterministic random stream per image pair (SplitMix64), derived from
//! `(seed, query, candidate)` so that results never depend on scheduling.

#[derive(Debug, Clone)]
pub struct PairRng(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl PairRng {
    pub fn for_pair(seed: u64, query: u64, candidate: u64) -> Self {
        PairRng(mix(seed
            ^ mix(query.wrapping_add(0x9e37_79b9_7f4a_7c15))
            ^ mix(!candidate)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}
