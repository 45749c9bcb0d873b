-- Whether a transaction was opened with a test client token (ct_test_):
-- only such transactions may be paid by the sandbox's simulator, so a live
-- transaction is never completed without a payment, even by an instance whose
-- sandbox was switched on by mistake. Existing rows are live (the safe value);
-- a constant default adds the column without rewriting the table.
ALTER TABLE transactions ADD COLUMN test_mode boolean NOT NULL DEFAULT false;
