-- Customers' profiles travel with their conversations (core/store/customer_profiles.py): a
-- profile counts the conversations of the customer and of those merged into it, and a refresh
-- finds the merged customers of a changed one, so merges are looked up by their survivor.
CREATE INDEX customers_merged_into ON customers (tenant_id, merged_into)
    WHERE merged_into IS NOT NULL;
