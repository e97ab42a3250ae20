//! Invoices: line items for a billing period from its usage and the plan's prices. Pure
//! arithmetic in integer micro-dollars, rounded half up once per line.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::storage::BYTES_PER_GB;
use crate::plans::Prices;

/// What a period used, as billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BilledUsage {
    pub calls: u64,
    pub compute_units: u64,
    /// Bytes stored times seconds.
    pub storage_byte_seconds: u128,
    /// Length of the period in seconds (a GB-month is one GB for the whole period).
    pub period_seconds: u64,
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LineItem {
    /// `plan_fee`, `calls`, `compute_units` or `storage`.
    pub kind: String,
    pub description: String,
    /// The quantity in its unit (calls, compute units, GB-months; 1 for the fee).
    pub quantity: f64,
    /// `month`, `call`, `compute_unit`, `gb_month`.
    pub unit: String,
    /// Price of `per` units, in micro-dollars.
    pub unit_price_micros: u64,
    /// How many units the unit price is for (1,000 calls, 1,000,000 compute units).
    pub per: u64,
    pub amount_micros: u64,
}

/// An invoice's lines and total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLines {
    pub lines: Vec<LineItem>,
    pub total_micros: u64,
}

fn ratio(numerator: u128, denominator: u128) -> u64 {
    if denominator == 0 {
        return 0;
    }
    u64::try_from((numerator + denominator / 2) / denominator).unwrap_or(u64::MAX)
}

/// The lines of a period's invoice.
pub fn lines(plan_name: &str, prices: &Prices, usage: &BilledUsage) -> InvoiceLines {
    let gb_month_denominator = u128::from(BYTES_PER_GB) * u128::from(usage.period_seconds);
    let gb_months = if gb_month_denominator == 0 {
        0.0
    } else {
        usage.storage_byte_seconds as f64 / gb_month_denominator as f64
    };
    let lines = vec![
        LineItem {
            kind: "plan_fee".into(),
            description: format!("{plan_name} plan"),
            quantity: 1.0,
            unit: "month".into(),
            unit_price_micros: prices.base_fee_micros,
            per: 1,
            amount_micros: prices.base_fee_micros,
        },
        LineItem {
            kind: "calls".into(),
            description: "Inference calls".into(),
            quantity: usage.calls as f64,
            unit: "call".into(),
            unit_price_micros: prices.per_1000_calls_micros,
            per: 1_000,
            amount_micros: ratio(
                u128::from(usage.calls) * u128::from(prices.per_1000_calls_micros),
                1_000,
            ),
        },
        LineItem {
            kind: "compute_units".into(),
            description: "Compute units (1 CU = 1,000 fuel = 1 µs of backend time)".into(),
            quantity: usage.compute_units as f64,
            unit: "compute_unit".into(),
            unit_price_micros: prices.per_million_compute_units_micros,
            per: 1_000_000,
            amount_micros: ratio(
                u128::from(usage.compute_units)
                    * u128::from(prices.per_million_compute_units_micros),
                1_000_000,
            ),
        },
        LineItem {
            kind: "storage".into(),
            description: "Model storage".into(),
            quantity: gb_months,
            unit: "gb_month".into(),
            unit_price_micros: prices.per_gb_month_micros,
            per: 1,
            amount_micros: ratio(
                usage.storage_byte_seconds * u128::from(prices.per_gb_month_micros),
                gb_month_denominator,
            ),
        },
    ];
    let total_micros = lines.iter().map(|l| l.amount_micros).sum();
    InvoiceLines {
        lines,
        total_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_price_each_kind_of_usage() {
        let prices = Prices {
            base_fee_micros: 49_000_000,
            per_1000_calls_micros: 400_000,
            per_million_compute_units_micros: 20_000,
            per_gb_month_micros: 100_000,
        };
        let month = 30 * 86_400;
        let usage = BilledUsage {
            calls: 12_345,
            compute_units: 3_500_000,
            // 10 GB for half the month: 5 GB-months.
            storage_byte_seconds: u128::from(10 * BYTES_PER_GB) * (month as u128 / 2),
            period_seconds: month,
        };
        let invoice = lines("Pro", &prices, &usage);
        let amounts: Vec<_> = invoice.lines.iter().map(|l| l.amount_micros).collect();
        // 12,345 calls at $0.40 per 1,000 = $4.938; 3.5M CU at $0.02 per million = $0.07;
        // 5 GB-months at $0.10 = $0.50.
        assert_eq!(amounts, [49_000_000, 4_938_000, 70_000, 500_000]);
        assert_eq!(invoice.total_micros, 54_508_000);
        assert!((invoice.lines[3].quantity - 5.0).abs() < 1e-9);
    }

    #[test]
    fn a_free_plan_costs_nothing_and_rounding_is_half_up() {
        let usage = BilledUsage {
            calls: 1,
            period_seconds: 1,
            ..BilledUsage::default()
        };
        assert_eq!(lines("Free", &Prices::default(), &usage).total_micros, 0);
        let prices = Prices {
            per_1000_calls_micros: 500,
            ..Prices::default()
        };
        // One call at 500 µ$ per 1,000 is 0.5 µ$: rounds to 1.
        assert_eq!(lines("X", &prices, &usage).lines[1].amount_micros, 1);
    }
}
