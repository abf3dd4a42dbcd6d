// How a plan is described to a person, shared by the landing and tenant pages.
import { formatMoney } from "./components.js";

export function planFeatures(p) {
  const gb = (p.memory_mb || 0) / 1024;
  const items = [
    p.database_strategy === "DEDICATED" ? "A database server of its own" : "Own database on a shared server",
    `${p.odoo_workers || 1} Odoo worker${p.odoo_workers === 1 ? "" : "s"}, ${Number.isInteger(gb) ? gb : gb.toFixed(1)} GB memory`,
    `${p.storage_gb || 0} GB storage`,
    `Backups kept ${p.backup_retention_days || 0} days`,
  ];
  if (p.trial_days) items.push(`${p.trial_days} days free trial`);
  return items;
}

export function planPrice(p) {
  const money = formatMoney(p.price);
  if (!money) return "";
  return `${money} per ${p.billing_period === "yearly" ? "year" : "month"}`;
}
