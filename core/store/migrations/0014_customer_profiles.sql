-- Customers' profiles travel with their conversations (core/store/customer_profiles.py): a
-- profile counts the conversations of the customer and of those merged into it, and a refresh
-- finds the merged customers of a changed one, so merges are looked up by their survivor; a
-- profile's block stands on the customer's channel ids too, so identities are looked up by
-- their customer (the primary key leads with the channel).
CREATE INDEX IF NOT EXISTS customers_merged_into ON customers (tenant_id, merged_into)
    WHERE merged_into IS NOT NULL;
CREATE INDEX IF NOT EXISTS customer_identities_customer
    ON customer_identities (tenant_id, customer_id);
