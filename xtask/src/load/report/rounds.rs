//! Which round a row reports: the round whose ratio is the median of the rounds, so
//! every number in a row comes from one real paired run, and every round's ratio
//! beside it.

use super::format::number;

/// Which way a ratio is better for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput ratios.
    Higher,
    /// Latency ratios.
    Lower,
}

/// The index of the round whose ratio is the median of `ratios`, so that a reported
/// row is one real paired run rather than numbers averaged from different runs. With
/// an even count there is no middle round: the worse of the two middle ones (by
/// `better`) is taken. A ratio that is not a number counts as the worst. `None` when
/// there are no rounds.
pub fn median_round(ratios: &[f64], better: Better) -> Option<usize> {
    if ratios.is_empty() {
        return None;
    }
    let order = ascending(ratios, better);
    let n = order.len();
    let at = match (n % 2, better) {
        (1, _) => n / 2,
        (_, Better::Higher) => n / 2 - 1,
        (_, Better::Lower) => n / 2,
    };
    Some(order[at])
}

/// The round indices of `ratios` from the lowest ratio to the highest (ties in round
/// order), with a ratio that is not a number at the worse end.
pub(super) fn ascending(ratios: &[f64], better: Better) -> Vec<usize> {
    let key = |i: usize| {
        let value = ratios[i];
        match (value.is_nan(), better) {
            (false, _) => value,
            (true, Better::Higher) => f64::NEG_INFINITY,
            (true, Better::Lower) => f64::INFINITY,
        }
    };
    let mut order: Vec<usize> = (0..ratios.len()).collect();
    order.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
    order
}

/// One ratio over the rounds of a series: the median round and every round's value.
pub(super) struct Pick<'a, T> {
    /// Index of the median round (0-based).
    pub(super) round: usize,
    pub(super) point: &'a T,
    pub(super) ratio: f64,
    pub(super) ratios: Vec<f64>,
    /// Whether each round's runs count.
    pub(super) valid: Vec<bool>,
    pub(super) better: Better,
}

impl<T> Pick<'_, T> {
    /// Every round's ratio, lowest first, the median one in bold when there are
    /// several, each round that does not count marked ⚠: `0.55 / **0.58** / 0.61`.
    pub(super) fn spread(&self) -> String {
        let several = self.ratios.len() > 1;
        ascending(&self.ratios, self.better)
            .into_iter()
            .map(|i| {
                let value = number(self.ratios[i]);
                let value = if several && i == self.round {
                    format!("**{value}**")
                } else {
                    value
                };
                if self.valid[i] {
                    value
                } else {
                    format!("{value} ⚠")
                }
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    /// `2 of 3`: which round the row is.
    pub(super) fn which(&self) -> String {
        format!("{} of {}", self.round + 1, self.ratios.len())
    }

    /// For the targets: `median of 3 paired rounds: 0.55 / **0.58** / 0.61`.
    pub(super) fn median_of(&self) -> String {
        match self.ratios.len() {
            1 => "one paired round".to_owned(),
            n => format!("median of {n} paired rounds: {}", self.spread()),
        }
    }

    pub(super) fn all_valid(&self) -> bool {
        self.valid.iter().all(|&v| v)
    }
}

/// The median round of `rounds` by `ratio`; `None` when there are no rounds.
pub(super) fn pick<'a, T>(
    rounds: &'a [T],
    ratio: impl Fn(&T) -> f64,
    valid: impl Fn(&T) -> bool,
    better: Better,
) -> Option<Pick<'a, T>> {
    let ratios: Vec<f64> = rounds.iter().map(&ratio).collect();
    let round = median_round(&ratios, better)?;
    Some(Pick {
        round,
        point: &rounds[round],
        ratio: ratios[round],
        valid: rounds.iter().map(valid).collect(),
        ratios,
        better,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_round_is_one_real_round() {
        use Better::{Higher, Lower};
        assert_eq!(median_round(&[], Higher), None);
        assert_eq!(median_round(&[0.7], Higher), Some(0));
        assert_eq!(median_round(&[0.61, 0.55, 0.57], Higher), Some(2));
        assert_eq!(median_round(&[0.61, 0.55, 0.57], Lower), Some(2));
        assert_eq!(median_round(&[3.0, 9.0, 1.0, 5.0, 4.0], Lower), Some(4));
        // Even counts: the worse of the two middle rounds.
        assert_eq!(median_round(&[0.6, 0.5, 0.7, 0.55], Higher), Some(3));
        assert_eq!(median_round(&[0.6, 0.5, 0.7, 0.55], Lower), Some(0));
        // Ties go by round order; a ratio that is not a number is the worst.
        assert_eq!(median_round(&[0.6, 0.6, 0.6], Higher), Some(1));
        assert_eq!(median_round(&[f64::NAN, 0.6, 0.7], Higher), Some(1));
        assert_eq!(median_round(&[f64::NAN, 2.0, 1.0], Lower), Some(1));
    }
}
